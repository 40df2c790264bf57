// Drift over time, read from a history: every interval in which the device was out of sync
// with its target, and how long each target version took to be reached.
import type { DeviceState } from '../device/state.ts';
import { type EventRef, eventRef, type History, instantMs } from './history.ts';

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
  const untilMs = instantMs(history.until);
  const intervals: DriftInterval[] = [];
  let open: DriftInterval | null = null;
  if (!inSync(history.start) && history.start.status === 'registered') {
    open = {
      start: history.start.drift_since ?? history.since ?? history.until,
      end: null,
      ongoing: true,
      duration_ms: 0,
      target_version: targetVersion(history.start),
      differed: driftDetail(history.start),
      differed_last: driftDetail(history.start),
      started_by: null,
      ended_by: null,
    };
  }
  const reconciliations: Reconciliation[] = [];
  let pendingTarget: Reconciliation | null = null;
  let groupStart = 0;
  for (let i = 0; i < history.steps.length; i += 1) {
    const step = history.steps[i]!;
    const nowInSync = inSync(step.after);
    // events sharing an instant (a report and what it derives) count as one change: only the
    // state after the last of them is ever the state "at" that instant
    if (i > 0 && history.steps[i - 1]!.at !== step.at) groupStart = i;
    const instantEnds = history.steps[i + 1]?.at !== step.at;
    // the cause: the first event of the instant that flipped sync the way it ended up (each
    // instant's events are looked at once, at its last: the report stays linear in the steps)
    let cause = step;
    for (let j = groupStart; instantEnds && j <= i; j += 1) {
      const s = history.steps[j]!;
      if (inSync(s.after) === nowInSync && inSync(s.before) !== nowInSync) {
        cause = s;
        break;
      }
    }
    const ref = eventRef(cause.event);
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
        differed_last: driftDetail(step.after),
        started_by: ref,
        ended_by: null,
      };
    } else if (open !== null && nowInSync) {
      open.end = step.at;
      open.ongoing = false;
      open.ended_by = ref;
      open.duration_ms = instantMs(step.at) - instantMs(open.start);
      intervals.push(open);
      open = null;
    } else if (open !== null) {
      open.differed_last = driftDetail(step.after);
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
      pendingTarget.converged_by = ref;
      pendingTarget.delay_ms = instantMs(step.at) - instantMs(pendingTarget.set_at);
      pendingTarget = null;
    }
  }
  if (open !== null) {
    open.duration_ms = Math.max(0, untilMs - instantMs(open.start));
    intervals.push(open);
  }
  if (pendingTarget !== null) pendingTarget.waiting_ms = Math.max(0, untilMs - instantMs(pendingTarget.set_at));
  const end = history.steps.length === 0 ? history.start : history.steps[history.steps.length - 1]!.after;
  const sinceMs = history.since === null ? null : instantMs(history.since);
  // time out of sync counted inside the window only
  const clipped = (i: DriftInterval) => {
    const from = Math.max(instantMs(i.start), sinceMs ?? -Infinity);
    const to = i.end === null ? untilMs : instantMs(i.end);
    return Math.max(0, to - from);
  };
  return {
    since: history.since,
    until: history.until,
    in_sync_at_end: inSync(end),
    intervals,
    reconciliations,
    totals: {
      intervals: intervals.length,
      out_of_sync_ms: intervals.reduce((sum, i) => sum + clipped(i), 0),
      longest_ms: intervals.reduce((max, i) => Math.max(max, i.duration_ms), 0),
      window_ms: sinceMs === null ? null : untilMs - sinceMs,
    },
  };
}
