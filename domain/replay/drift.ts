// Drift over time, read from a history: every interval in which the device was out of sync
// with its target, and how long each target version took to be reached.
import type { DeviceState } from '../device/state.ts';
import {
  type EventRef,
  eventRef,
  FOLD_SLICE,
  type History,
  instantMs,
  runPausing,
  runThrough,
  type Step,
} from './history.ts';

/** One stretch of time out of sync. */
export type DriftInterval = {
  start: string;
  /** null while still out of sync at the end of the window. */
  end: string | null;
  ongoing: boolean;
  /** Up to `end`, or to the end of the window while ongoing. */
  duration_ms: number;
  target_version: number | null;
  /** What differed when it started: the drift's non-empty fields (apps missing, services, …). */
  differed: Record<string, unknown>;
  /** What differed last before it ended (or at the end of the window). */
  differed_last: Record<string, unknown>;
  /** The event that put the device out of sync; null when that was before the window. */
  started_by: EventRef | null;
  ended_by: EventRef | null;
};

/** How one target version was reached. */
export type Reconciliation = {
  target_version: number;
  set_at: string;
  set_by: EventRef;
  status: 'converged' | 'superseded' | 'pending';
  /** First instant the device was in sync with this version. */
  converged_at: string | null;
  converged_by: EventRef | null;
  /** converged_at - set_at; null unless converged. */
  delay_ms: number | null;
  superseded_at: string | null;
  /** For pending targets: time waited so far, to the end of the window. */
  waiting_ms: number | null;
};

/** The drift report of a window. */
export type DriftReport = {
  since: string | null;
  until: string;
  in_sync_at_end: boolean;
  intervals: DriftInterval[];
  reconciliations: Reconciliation[];
  totals: { intervals: number; out_of_sync_ms: number; longest_ms: number; window_ms: number | null };
};

/** A state's drift is relevant only once it is registered; before that it is "in sync". */
export const inSync = (state: DeviceState): boolean => state.status !== 'registered' || state.drift.in_sync;

/** The non-empty parts of a drift, read generically (new drift fields show up unasked). */
export function driftDetail(state: DeviceState): Record<string, unknown> {
  if (state.status !== 'registered') return {};
  const detail: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(state.drift)) {
    if (key === 'in_sync' || value === undefined || value === null || value === false) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    detail[key] = value;
  }
  return detail;
}

const targetVersion = (
  state: DeviceState,
): number | null => (state.status === 'registered' ? state.target?.version ?? null : null);

/** Drift intervals and reconciliation delays of a history (ongoing ones measured to `until`). */
export function driftReport(history: History): DriftReport {
  return runThrough(driftOf(history));
}

/** As driftReport, awaiting `pause()` after every FOLD_SLICE steps (see buildHistoryPausing). */
export function driftReportPausing(history: History, pause: () => Promise<void>): Promise<DriftReport> {
  return runPausing(driftOf(history), pause);
}

/** The drift report of a history as a generator that yields after every FOLD_SLICE steps. */
function* driftOf(history: History): Generator<void, DriftReport, void> {
  const tracker = createDriftTracker(history);
  tracker.start(history.start);
  for (const [i, step] of history.steps.entries()) {
    tracker.step(step);
    if ((i + 1) % FOLD_SLICE === 0) yield;
  }
  return tracker.finish();
}

/**
 * The drift report of a window, built as its fold goes (a StepSink for foldWindow): `start`
 * with the state at `since`, then every step in order, then `finish()`. It keeps only the steps
 * of the instant at hand, so the drift view of a long history holds no state but the current.
 */
export function createDriftTracker(window: { since: string | null; until: string }) {
  const untilMs = instantMs(window.until);
  const intervals: DriftInterval[] = [];
  const reconciliations: Reconciliation[] = [];
  let open: DriftInterval | null = null;
  // the state whose drift the open interval reports as `differed_last` (read when it closes)
  let lastOut: DeviceState | null = null;
  let pendingTarget: Reconciliation | null = null;
  let end: DeviceState | null = null;
  // the steps of the latest instant: events sharing an instant (a report and what it derives)
  // count as one change, only the state after the last of them is ever the state "at" it
  let group: Step[] = [];

  /** Takes the steps of one instant, in order; the last of them ends it. */
  const instant = (steps: readonly Step[]): void => {
    for (const [k, step] of steps.entries()) {
      const nowInSync = inSync(step.after);
      const instantEnds = k === steps.length - 1;
      // the cause: the first event of the instant that flipped sync the way it ended up
      const cause = () =>
        eventRef(
          (steps.find((s, j) => j <= k && inSync(s.after) === nowInSync && inSync(s.before) !== nowInSync) ?? step)
            .event,
        );
      if (!instantEnds) {
        // nothing to decide until the instant's last event
      } else if (open === null && !nowInSync) {
        open = {
          start: step.at,
          end: null,
          ongoing: true,
          duration_ms: 0,
          target_version: targetVersion(step.after),
          differed: driftDetail(step.after),
          differed_last: {},
          started_by: cause(),
          ended_by: null,
        };
        lastOut = step.after;
      } else if (open !== null && nowInSync) {
        open.end = step.at;
        open.ongoing = false;
        open.ended_by = cause();
        open.duration_ms = instantMs(step.at) - instantMs(open.start);
        open.differed_last = driftDetail(lastOut!);
        intervals.push(open);
        open = null;
      } else if (open !== null) {
        lastOut = step.after;
      }
      const version = targetVersion(step.after);
      if (version !== null && version !== targetVersion(step.before)) {
        if (pendingTarget !== null) {
          pendingTarget.status = 'superseded';
          pendingTarget.superseded_at = step.at;
          pendingTarget = null;
        }
        pendingTarget = {
          target_version: version,
          set_at: step.at,
          set_by: eventRef(step.event),
          status: 'pending',
          converged_at: null,
          converged_by: null,
          delay_ms: null,
          superseded_at: null,
          waiting_ms: null,
        };
        reconciliations.push(pendingTarget);
      }
      if (instantEnds && pendingTarget !== null && version === pendingTarget.target_version && nowInSync) {
        pendingTarget.status = 'converged';
        pendingTarget.converged_at = step.at;
        pendingTarget.converged_by = cause();
        pendingTarget.delay_ms = instantMs(step.at) - instantMs(pendingTarget.set_at);
        pendingTarget = null;
      }
    }
  };

  return {
    /** The state at `since` (the history's start). */
    start(state: DeviceState): void {
      end = state;
      if (!inSync(state) && state.status === 'registered') {
        open = {
          start: state.drift_since ?? window.since ?? window.until,
          end: null,
          ongoing: true,
          duration_ms: 0,
          target_version: targetVersion(state),
          differed: driftDetail(state),
          differed_last: {},
          started_by: null,
          ended_by: null,
        };
        lastOut = state;
      }
    },
    /** The next step. */
    step(step: Step): void {
      if (group.length > 0 && group[group.length - 1]!.at !== step.at) {
        instant(group);
        group = [];
      }
      group.push(step);
      end = step.after;
    },
    /** The report, ongoing interval and pending target measured to `until`. */
    finish(): DriftReport {
      if (group.length > 0) instant(group);
      group = [];
      const last = open as DriftInterval | null;
      if (last !== null) {
        last.duration_ms = Math.max(0, untilMs - instantMs(last.start));
        last.differed_last = driftDetail(lastOut!);
        intervals.push(last);
      }
      const pending = pendingTarget as Reconciliation | null;
      if (pending !== null) pending.waiting_ms = Math.max(0, untilMs - instantMs(pending.set_at));
      const sinceMs = window.since === null ? null : instantMs(window.since);
      // time out of sync counted inside the window only
      const clipped = (i: DriftInterval) => {
        const from = Math.max(instantMs(i.start), sinceMs ?? -Infinity);
        const to = i.end === null ? untilMs : instantMs(i.end);
        return Math.max(0, to - from);
      };
      return {
        since: window.since,
        until: window.until,
        in_sync_at_end: end === null || inSync(end),
        intervals,
        reconciliations,
        totals: {
          intervals: intervals.length,
          out_of_sync_ms: intervals.reduce((sum, i) => sum + clipped(i), 0),
          longest_ms: intervals.reduce((max, i) => Math.max(max, i.duration_ms), 0),
          window_ms: sinceMs === null ? null : untilMs - sinceMs,
        },
      };
    },
  };
}
