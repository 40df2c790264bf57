// The read operations replay offers, over any source (database or fixture): state at an
// instant, history, drift, diff and the fleet at an instant. The CLI and the HTTP routes
// both call these, so they always agree.
import type { RegisteredDevice } from '../device/state.ts';
import { createDriftTracker, driftDetail, type DriftReport } from './drift.ts';
import { diffOf, type DiffReport } from './diff.ts';
import {
  buildHistory,
  buildHistoryPausing,
  createWindowFolder,
  foldWindow,
  type History,
  instantMs,
  runPausing,
  runThrough,
  type StateAt,
} from './history.ts';
import { type DeviceSummary, type EventWindow, type Progress, ReplayError, type ReplaySource } from './source.ts';
import { type StateView, stateView } from './view.ts';

/** The device, or a ReplayError naming the unknown uuid. */
export async function requireDevice(source: ReplaySource, uuid: string): Promise<DeviceSummary> {
  const device = await source.device(uuid);
  if (device === null) {
    throw new ReplayError('device_not_found', `no device ${uuid} in ${source.description}`, { uuid });
  }
  return device;
}

function notYet(device: DeviceSummary, at: string): ReplayError {
  return new ReplayError(
    'device_not_registered_yet',
    `device ${device.uuid} did not exist at ${at}: it was registered at ${device.registered_at}`,
    { uuid: device.uuid, at, registered_at: device.registered_at },
  );
}

function checkRange(since: string | undefined, until: string, names: [string, string] = ['since', 'until']): void {
  if (since !== undefined && instantMs(since) > instantMs(until)) {
    throw new ReplayError('invalid_range', `${names[0]} (${since}) is after ${names[1]} (${until})`, {
      [names[0]]: since,
      [names[1]]: until,
    });
  }
}

/** The state of a device at an instant; ReplayError before it existed. */
export async function replayState(
  source: ReplaySource,
  uuid: string,
  at: string,
): Promise<{ device: DeviceSummary; view: StateView; result: StateAt }> {
  const device = await requireDevice(source, uuid);
  const result = await source.stateAt(uuid, at);
  if (result.state.status !== 'registered') throw notYet(device, at);
  return { device, view: stateView(uuid, result as StateAt & { state: RegisteredDevice }), result };
}

/** The device and the bounds of its history over (since, until]; ReplayError when there is none. */
async function windowOf(
  source: ReplaySource,
  uuid: string,
  range: { since?: string | undefined; until?: string | undefined },
): Promise<{ device: DeviceSummary; range: { since: string | undefined; until: string } }> {
  const device = await requireDevice(source, uuid);
  const until = range.until ?? source.now();
  checkRange(range.since, until);
  if (instantMs(until) < instantMs(device.registered_at)) throw notYet(device, until);
  // after retention, "the whole history" starts at the horizon (issue #6)
  const horizon = range.since === undefined ? await source.horizon?.() ?? null : null;
  const since = horizon !== null && instantMs(device.registered_at) < instantMs(horizon) ? horizon : range.since;
  return { device, range: { since, until } };
}

/** The window of a device's history over (since, until] and the bounds it was read with. */
async function readWindow(
  source: ReplaySource,
  uuid: string,
  range: { since?: string | undefined; until?: string | undefined },
): Promise<{ device: DeviceSummary; window: EventWindow; range: { since: string | undefined; until: string } }> {
  const { device, range: bounds } = await windowOf(source, uuid, range);
  return { device, window: await source.window(uuid, bounds), range: bounds };
}

/** Runs sliced work (a generator that yields between slices), pausing as the source asks (ReplaySource.pause). */
function sliced<T>(source: ReplaySource, work: Generator<void, T, void>): Promise<T> {
  return source.pause === undefined ? Promise.resolve(runThrough(work)) : runPausing(work, source.pause);
}

/** The history of a device over (since, until]; `until` defaults to the source's now. */
export async function replayHistory(
  source: ReplaySource,
  uuid: string,
  range: { since?: string | undefined; until?: string | undefined },
): Promise<{ device: DeviceSummary; history: History }> {
  const { device, window, range: bounds } = await readWindow(source, uuid, range);
  const history = source.pause === undefined
    ? buildHistory(window.base, window.events, bounds)
    : await buildHistoryPausing(window.base, window.events, bounds, source.pause);
  return { device, history };
}

/**
 * The drift report of a window read from `source`, built as the fold goes: no state is kept
 * but the current one (the drift view of a long history holds no history in memory).
 */
export async function driftOfWindow(
  source: ReplaySource,
  window: EventWindow,
  range: { since?: string | undefined; until: string },
): Promise<DriftReport> {
  const tracker = createDriftTracker({ since: range.since ?? null, until: range.until });
  await sliced(source, foldWindow(window.base, window.events, range, tracker));
  return tracker.finish();
}

/**
 * Drift intervals and reconciliation delays of a device over a window. From a source that reads
 * in batches (windowBatches), each batch is folded as it arrives and dropped: the drift of a
 * long history holds neither its events nor its states in memory.
 */
export async function replayDrift(
  source: ReplaySource,
  uuid: string,
  range: { since?: string | undefined; until?: string | undefined },
): Promise<DriftReport & { device: DeviceSummary }> {
  if (source.windowBatches === undefined) {
    const { device, window, range: bounds } = await readWindow(source, uuid, range);
    return { device, ...await driftOfWindow(source, window, bounds) };
  }
  const { device, range: bounds } = await windowOf(source, uuid, range);
  const { base, each } = await source.windowBatches(uuid, bounds);
  const tracker = createDriftTracker({ since: bounds.since ?? null, until: bounds.until });
  const folder = createWindowFolder(base, bounds, tracker);
  await each((events) => runThrough(folder.add(events)));
  folder.finish();
  return { device, ...tracker.finish() };
}

/** What changed between two instants; the first may be before the device existed. */
export async function replayDiff(
  source: ReplaySource,
  uuid: string,
  from: string,
  to: string,
): Promise<DiffReport & { device: DeviceSummary }> {
  checkRange(from, to, ['from', 'to']);
  const { device, history } = await replayHistory(source, uuid, { since: from, until: to });
  return { device, ...await sliced(source, diffOf(history)) };
}

/** One device's line in the fleet view. */
export type FleetRow = {
  uuid: string;
  device_name: string;
  fleet_id: string;
  is_active: boolean;
  target_version: number | null;
  in_sync: boolean;
  drift_since: string | null;
  out_of_sync_ms: number | null;
  differed: Record<string, unknown>;
  reported_at: string | null;
  last_seen_at: string | null;
};

/** The fleet at an instant: every device registered by then, and totals. */
export type FleetStatus = {
  at: string;
  fleet: string | null;
  devices: FleetRow[];
  totals: {
    devices: number;
    in_sync: number;
    out_of_sync: number;
    inactive: number;
    without_target: number;
    never_reported: number;
  };
};

/** Every device's sync status at `at`, optionally of one fleet. */
export async function replayFleet(
  source: ReplaySource,
  at: string,
  options: { fleet?: string | undefined; onProgress?: Progress | undefined } = {},
): Promise<FleetStatus> {
  const rows: FleetRow[] = [];
  for (const { summary, result } of await source.fleetAt(at, options)) {
    const state = result.state;
    if (state.status !== 'registered') continue;
    if (options.fleet !== undefined && state.fleet_id !== options.fleet) continue;
    rows.push({
      uuid: summary.uuid,
      device_name: state.device_name,
      fleet_id: state.fleet_id,
      is_active: state.is_active,
      target_version: state.target?.version ?? null,
      in_sync: state.drift.in_sync,
      drift_since: state.drift_since,
      out_of_sync_ms: state.drift_since === null ? null : instantMs(at) - instantMs(state.drift_since),
      differed: driftDetail(state),
      reported_at: state.current?.reported_at ?? null,
      last_seen_at: result.last_seen_at,
    });
  }
  return {
    at,
    fleet: options.fleet ?? null,
    devices: rows,
    totals: {
      devices: rows.length,
      in_sync: rows.filter((r) => r.in_sync).length,
      out_of_sync: rows.filter((r) => !r.in_sync).length,
      inactive: rows.filter((r) => !r.is_active).length,
      without_target: rows.filter((r) => r.target_version === null).length,
      never_reported: rows.filter((r) => r.reported_at === null).length,
    },
  };
}
