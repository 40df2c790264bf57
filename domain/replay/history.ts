// Replay over a device's event rows with the domain's one fold: the state at an instant,
// and the sequence of states as time passes. Shared by the CLI, the HTTP routes, the
// snapshotter and the fixture suite; pure (no I/O).
import { evolve } from '../device/evolve.ts';
import { type DeviceEvent, isDeviceEventType, parseDeviceEvent } from '../device/events.ts';
import { type DeviceState, initialState } from '../device/state.ts';
import type { StoredEvent } from '../recorded-event.ts';

/** What replay reads of an event row (the database, a fixture or an archive). */
export type ReplayEvent =
  & Pick<StoredEvent, 'event_id' | 'event_type' | 'aggregate_version' | 'data' | 'metadata' | 'timestamp'>
  & Partial<Pick<StoredEvent, 'source' | 'aggregate_id' | 'hash'>>;

/** Thrown for an event type the fold of this build does not know (never silently skipped). */
export class UnknownEventTypeError extends Error {
  constructor(event: Pick<ReplayEvent, 'event_id' | 'event_type' | 'aggregate_version'>) {
    super(
      `event ${event.event_id} (version ${event.aggregate_version}) has type "${event.event_type}", which this build's fold does not know`,
    );
    this.name = 'UnknownEventTypeError';
  }
}

/**
 * An event row as the folder reads it: its instant also in ms since the epoch, and whether
 * the device caused it (isDeviceCaused). The database's state reads select exactly this.
 */
export type FoldEvent = Pick<ReplayEvent, 'event_id' | 'event_type' | 'aggregate_version' | 'data' | 'timestamp'> & {
  at_ms: number;
  device_caused: boolean;
};

/** The row as the fold sees it; `validate` checks `data` against the event's zod schema (fixtures). */
export function toDeviceEvent(row: Omit<FoldEvent, 'at_ms' | 'device_caused'>, validate = false): DeviceEvent {
  return deviceEventAt(row, row.timestamp, validate);
}

/** As toDeviceEvent, for a row whose ISO instant is given apart (FoldRow). */
function deviceEventAt(
  row: Omit<FoldRow, 'at_ms' | 'device_caused'>,
  timestamp: string,
  validate: boolean,
): DeviceEvent {
  if (!isDeviceEventType(row.event_type)) throw new UnknownEventTypeError(row);
  if (validate) return parseDeviceEvent({ type: row.event_type, data: row.data, timestamp });
  return { type: row.event_type, data: row.data, timestamp } as DeviceEvent;
}

/** Milliseconds since the epoch of an ISO instant. */
export const instantMs = (iso: string): number => Date.parse(iso);

const DAY_MS = 86_400_000;
const pad = (n: number, width: number) => String(n).padStart(width, '0');
// the time of day in three pieces, "HH:mm:" (by minute of the day), "ss." and "sssZ"
const MINUTES = Array.from({ length: 1_440 }, (_, m) => `${pad(Math.floor(m / 60), 2)}:${pad(m % 60, 2)}:`);
const SECONDS = Array.from({ length: 60 }, (_, s) => `${pad(s, 2)}.`);
const MILLIS = Array.from({ length: 1_000 }, (_, ms) => `${pad(ms, 3)}Z`);
let cachedDay = NaN;
let cachedDayPrefix = '';

/**
 * `new Date(ms).toISOString()`, an order of magnitude cheaper: a full replay formats 100,000
 * instants, nearly all on a day already seen, so the date part ("2026-01-05T", or "+012345-…T"
 * outside years 0–9999) is kept from the last call and only the time of day is put together
 * from tables. Anything but an integer in Date's range (±8.64e15) is left to Date itself, which
 * truncates fractions and throws the same RangeError. test/replay/iso-instant.test.ts compares
 * both over boundaries and random instants.
 */
export function isoOfMs(ms: number): string {
  if (!Number.isInteger(ms) || ms > 8.64e15 || ms < -8.64e15) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS) * DAY_MS; // ms are exact integers, so is day (a multiple of 86,400,000 in range)
  if (day !== cachedDay) {
    const iso = new Date(day).toISOString();
    cachedDayPrefix = iso.slice(0, iso.length - 13); // without "00:00:00.000Z"
    cachedDay = day;
  }
  const ofDay = ms - day;
  const seconds = Math.floor(ofDay / 1000);
  return cachedDayPrefix + MINUTES[Math.floor(seconds / 60)]! + SECONDS[seconds % 60]! + MILLIS[ofDay % 1000]!;
}

/** True when the device itself caused the event (its last sign of life before an instant). */
export function isDeviceCaused(event: ReplayEvent): boolean {
  const actor = event.metadata['actor'] as { type?: unknown } | undefined;
  return actor?.type === 'device' || event.source === 'device';
}

/** A row as the folder reads it. */
export const toFoldEvent = (row: ReplayEvent): FoldEvent => ({
  event_id: row.event_id,
  event_type: row.event_type,
  aggregate_version: row.aggregate_version,
  data: row.data,
  timestamp: row.timestamp,
  at_ms: instantMs(row.timestamp),
  device_caused: isDeviceCaused(row),
});

/**
 * Each event's instant (ms since the epoch): its timestamp, or the latest timestamp before it
 * in version order when that is later. Events appended since migration 011 are stamped in
 * order, so their instant is their timestamp; a log written before may hold an event stamped
 * before an earlier version's (two requests that read the clock in one order and committed in
 * the other), which becomes part of the past only with the event before it. `events` are in
 * version order; `after` is the latest instant before the first of them.
 */
export function eventInstants(events: readonly Pick<ReplayEvent, 'timestamp'>[], after = -Infinity): number[] {
  let latest = after;
  return events.map((e) => (latest = Math.max(latest, instantMs(e.timestamp))));
}

/**
 * The state at `at`, by the definition: `events.filter(e => instant(e) <= at).reduce(evolve,
 * initialState())` over one device's events in version order, an event's instant being its
 * timestamp (or, in a log written before migration 011, the latest timestamp before it:
 * eventInstants). Instants never decrease with versions, so the events folded are always the
 * first n: the state at T is a state the device was in. The reference every faster path
 * (snapshots, the database's reads, history steps) is tested against.
 */
export function replayAt(events: readonly ReplayEvent[], at: string): DeviceState {
  const t = instantMs(at);
  const instants = eventInstants(events);
  return events.filter((_, i) => instants[i]! <= t).map((e) => toDeviceEvent(e)).reduce(evolve, initialState());
}

/** Where a replay starts: the initial state, or a snapshot of events 1..version. */
export type ReplayBase = {
  state: DeviceState;
  version: number;
  /** Latest timestamp among the folded events; null for the initial state. */
  last_event_at: string | null;
  last_seen_at: string | null;
};

/** The base before any event. */
export const initialBase = (): ReplayBase => ({
  state: initialState(),
  version: 0,
  last_event_at: null,
  last_seen_at: null,
});

/** A state at an instant, with how it was computed. */
export type StateAt = {
  at: string;
  state: DeviceState;
  /** Latest device-caused event at or before `at` (heartbeats are not events). */
  last_seen_at: string | null;
  /** Events folded in total (the snapshot's included). */
  events_folded: number;
  /** The snapshot replay started from, or null for a fold from the first event. */
  snapshot_version: number | null;
};

const later = (
  a: string | null,
  b: string | null,
): string | null => (a === null ? b : b === null ? a : (instantMs(b) > instantMs(a) ? b : a));

/**
 * A fold row as the database's state reads send it: a FoldEvent whose instant is only in ms
 * since the epoch. The folder formats the ISO text (isoOfMs) only for the events it folds.
 */
export type FoldRow = Omit<FoldEvent, 'timestamp'>;

/**
 * Folds events into a base incrementally (page by page); `result()` is the state at `at`: the
 * base, then the events after it in version order while their instant (eventInstants, from the
 * base's last_event_at) is at or before `at`. The events may come filtered by timestamp, as the
 * database's reads send them (`timestamp <= at`, for partition pruning): a version missing from
 * them was left out for lying after `at`, so the fold ends before it, as the definition's does.
 */
export function createFolder(base: ReplayBase, at: string, validate = false) {
  const t = instantMs(at);
  let state = base.state;
  let lastSeen = base.last_seen_at;
  let lastSeenMs = lastSeen === null ? -Infinity : instantMs(lastSeen);
  let folded = 0;
  let next = base.version + 1;
  let latest = base.last_event_at === null ? -Infinity : instantMs(base.last_event_at);
  let ended = false;
  /** True when the event is the next version and its instant is at or before `at`; false ends the fold. */
  const admit = (event: Pick<FoldRow, 'aggregate_version' | 'at_ms'>): boolean => {
    if (ended || event.aggregate_version !== next) {
      ended ||= event.aggregate_version > next;
      return false;
    }
    if (event.at_ms > latest) latest = event.at_ms;
    if (latest > t) {
      ended = true;
      return false;
    }
    next += 1;
    return true;
  };
  /** Folds one admitted event stamped `timestamp`. */
  const fold = (event: FoldRow, timestamp: string): void => {
    state = evolve(state, deviceEventAt(event, timestamp, validate));
    // the latest timestamp, not the last event's: a log written before migration 011 may go backwards
    if (event.device_caused && event.at_ms > lastSeenMs) {
      lastSeen = timestamp;
      lastSeenMs = event.at_ms;
    }
    folded += 1;
  };
  return {
    /** Adds events in version order (those up to base.version are skipped). */
    add(events: readonly FoldEvent[]): void {
      for (const event of events) if (admit(event)) fold(event, event.timestamp);
    },
    /** As `add`, for rows with the instant in ms only. */
    addRows(rows: readonly FoldRow[]): void {
      for (const row of rows) if (admit(row)) fold(row, isoOfMs(row.at_ms));
    },
    result(): StateAt {
      return {
        at,
        state,
        last_seen_at: lastSeen,
        events_folded: base.version + folded,
        snapshot_version: base.version === 0 ? null : base.version,
      };
    },
  };
}

/**
 * The state at `at` from a base and the events after it (version order, version > base.version):
 * the base plus the later events whose instant is at or before `at` (createFolder). Equal to
 * `replayAt` over all events whenever the base's events all happened at or before `at`.
 */
export function foldFrom(base: ReplayBase, events: readonly ReplayEvent[], at: string, validate = false): StateAt {
  const folder = createFolder(base, at, validate);
  folder.add(events.map(toFoldEvent));
  return folder.result();
}

/** One event becoming part of the past: the state just before and just after its instant. */
export type Step = {
  event: ReplayEvent;
  /** The event's instant (eventInstants): its timestamp, or a later one before it in a log written before migration 011. */
  at: string;
  before: DeviceState;
  after: DeviceState;
  last_seen_at: string | null;
};

/** A device's history over a window: the state at its start, then one step per event. */
export type History = {
  since: string | null;
  until: string;
  /** The state at `since` (the initial state when there is no `since`). */
  start: DeviceState;
  start_last_seen: string | null;
  steps: Step[];
};

/** Events folded between two pauses of buildHistoryPausing (a few milliseconds of work). */
export const FOLD_SLICE = 500;

/**
 * Where a window's fold goes: `start` once, with the state at `since`, before the first step
 * (or at the end when there is none), then every step in order. A history keeps them; the
 * drift view's tracker (createDriftTracker) looks at each once and keeps none.
 */
export type StepSink = {
  start: (state: DeviceState, lastSeen: string | null) => void;
  step: (step: Step) => void;
};

/**
 * The fold of a window, fed its events in version order, in one array or batch after batch
 * (as the database's cursor reads them, filtered by timestamp, or all): the ones at or before
 * `since` are folded into the start, each later one is a step at its instant (eventInstants),
 * until the first whose instant is after `until` or whose version is missing (left out of the
 * read for lying after `until`). `add` is a generator that yields after every FOLD_SLICE
 * events, so a caller can let other work run in between; `finish` after the last batch.
 */
export function createWindowFolder(
  base: ReplayBase,
  window: { since?: string | undefined; until: string },
  sink: StepSink,
  validate = false,
) {
  const sinceMs = window.since === undefined ? -Infinity : instantMs(window.since);
  const untilMs = instantMs(window.until);
  let state = base.state;
  let lastSeen = base.last_seen_at;
  let started = false;
  let ended = false;
  let next = base.version + 1;
  let latest = base.last_event_at === null ? -Infinity : instantMs(base.last_event_at);
  let latestIso = base.last_event_at;
  return {
    *add(events: readonly ReplayEvent[]): Generator<void, void, void> {
      for (const event of events) {
        if (ended) return;
        if (event.aggregate_version < next) continue;
        if (event.aggregate_version > next) {
          ended = true;
          return;
        }
        const ms = instantMs(event.timestamp);
        if (ms > latest) {
          latest = ms;
          latestIso = event.timestamp;
        }
        if (latest > untilMs) {
          ended = true;
          return;
        }
        const before = state;
        if (!started && latest > sinceMs) {
          sink.start(state, lastSeen);
          started = true;
        }
        state = evolve(state, toDeviceEvent(event, validate));
        if (isDeviceCaused(event)) lastSeen = later(lastSeen, event.timestamp);
        if (started) sink.step({ event, at: latestIso!, before, after: state, last_seen_at: lastSeen });
        next += 1;
        if ((next - base.version - 1) % FOLD_SLICE === 0) yield;
      }
    },
    finish(): void {
      if (!started) sink.start(state, lastSeen);
      started = true;
    },
  };
}

/** The fold of a window's events (createWindowFolder) as one generator. */
export function* foldWindow(
  base: ReplayBase,
  events: readonly ReplayEvent[],
  window: { since?: string | undefined; until: string },
  sink: StepSink,
  validate = false,
): Generator<void, void, void> {
  const folder = createWindowFolder(base, window, sink, validate);
  yield* folder.add(events);
  folder.finish();
}

/** The history of a window as a generator (see foldWindow). */
function* historyOf(
  base: ReplayBase,
  events: readonly ReplayEvent[],
  window: { since?: string | undefined; until: string },
  validate: boolean,
): Generator<void, History, void> {
  const history: History = {
    since: window.since ?? null,
    until: window.until,
    start: base.state,
    start_last_seen: base.last_seen_at,
    steps: [],
  };
  yield* foldWindow(base, events, window, {
    start: (state, lastSeen) => {
      history.start = state;
      history.start_last_seen = lastSeen;
    },
    step: (step) => history.steps.push(step),
  }, validate);
  return history;
}

/**
 * The states as time passes through (since, until]: the events after `base` in version order
 * (as `window` reads them: filtered by timestamp, or all), each a step at its instant
 * (eventInstants), whose `after` is the state at that instant by the definition. One fold,
 * so the cost is the number of events read. `base` must cover only events at or before `since`.
 */
export function buildHistory(
  base: ReplayBase,
  events: readonly ReplayEvent[],
  window: { since?: string | undefined; until: string },
  validate = false,
): History {
  return runThrough(historyOf(base, events, window, validate));
}

/**
 * As buildHistory, awaiting `pause()` after every FOLD_SLICE events: a server passes a turn of
 * its event loop, so a long history does not hold up the requests waiting behind it.
 */
export function buildHistoryPausing(
  base: ReplayBase,
  events: readonly ReplayEvent[],
  window: { since?: string | undefined; until: string },
  pause: () => Promise<void>,
): Promise<History> {
  return runPausing(historyOf(base, events, window, false), pause);
}

/** The result of work written as a generator that yields between slices, done in one go. */
export function runThrough<T>(work: Generator<void, T, void>): T {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
  }
}

/** The result of work written as a generator that yields between slices, awaiting `pause()` at each. */
export async function runPausing<T>(work: Generator<void, T, void>, pause: () => Promise<void>): Promise<T> {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    await pause();
  }
}

/** The state a history shows at an instant inside it. */
export function stateInHistory(history: History, at: string): DeviceState {
  const t = instantMs(at);
  let state = history.start;
  for (const step of history.steps) {
    if (instantMs(step.at) > t) break;
    state = step.after;
  }
  return state;
}

/** A short reference to an event, for "caused by" and "ended by". */
export type EventRef = {
  event_id: string;
  event_type: string;
  version: number;
  timestamp: string;
  actor: string | null;
};

/** The reference of an event row. */
export function eventRef(event: ReplayEvent): EventRef {
  const actor = event.metadata['actor'] as { type?: string; id?: string } | undefined;
  return {
    event_id: event.event_id,
    event_type: event.event_type,
    version: event.aggregate_version,
    timestamp: event.timestamp,
    actor: actor?.type === undefined ? null : `${actor.type}${actor.id === undefined ? '' : `:${actor.id}`}`,
  };
}
