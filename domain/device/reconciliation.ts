// Reconciliation: the journey from a target update to the first report in sync with it.
// Opened by a target update that leaves the device out of sync; closed by convergence,
// by the device giving up (update_status), by a newer target, or by the deadline.
import { computeDrift } from './drift.ts';
import { mergeReport } from './evolve.ts';
import type { DeviceEvent, StateReport } from './events.ts';
import type { RegisteredDevice } from './state.ts';

/** update_status values (lower-cased) by which a device says it gave up on the target. */
export const failedUpdateStatuses = ['failed', 'rejected', 'aborted'] as const;

/** Milliseconds from `from` to `to` (ISO instants), never negative. */
export function elapsedMs(from: string, to: string): number {
  return Math.max(0, Date.parse(to) - Date.parse(from));
}

function openReconciliation(device: RegisteredDevice) {
  return device.reconciliation?.status === 'open' ? device.reconciliation : null;
}

/**
 * Events a target update implies, given the device before it and after it: the open
 * reconciliation (if any) fails as superseded, and a new one starts when the new target
 * leaves the device out of sync.
 */
export function reconciliationAfterTarget(
  before: RegisteredDevice,
  after: RegisteredDevice,
  now: string,
): DeviceEvent[] {
  const events: DeviceEvent[] = [];
  const open = openReconciliation(before);
  const target = after.target;
  if (target === null) return events;
  if (open !== null) {
    events.push({
      type: 'reconciliation.failed',
      timestamp: now,
      data: {
        target_version: open.target_version,
        started_at: open.started_at,
        duration_ms: elapsedMs(open.started_at, now),
        reason: 'superseded',
        superseded_by: target.version,
      },
    });
  }
  if (!after.drift.in_sync) {
    events.push({
      type: 'reconciliation.started',
      timestamp: now,
      data: {
        target_version: target.version,
        apps_missing: after.drift.apps_missing,
        apps_extra: after.drift.apps_extra,
        services: after.drift.services.map((s) => ({
          app_id: s.app_id,
          service_name: s.service_name,
          problem: s.problem,
          ...(s.expected === undefined ? {} : { expected: s.expected }),
          ...(s.actual === undefined ? {} : { actual: s.actual }),
        })),
        config_differs: after.drift.config_differs,
      },
    });
  }
  return events;
}

/**
 * Events a report implies for the open reconciliation: completed when the report brings
 * the device in sync with its target version (duration since the target update), failed
 * when the device reports a failed, rejected or aborted update status.
 */
export function reconciliationAfterReport(before: RegisteredDevice, report: StateReport, now: string): DeviceEvent[] {
  const open = openReconciliation(before);
  if (open === null || before.target === null || before.target.version !== open.target_version) return [];
  const drift = computeDrift(before.target, mergeReport(before.current, report, now));
  const base = {
    target_version: open.target_version,
    started_at: open.started_at,
    duration_ms: elapsedMs(open.started_at, now),
  };
  if (drift.in_sync) return [{ type: 'reconciliation.completed', timestamp: now, data: base }];
  const status = report.update_status?.trim().toLowerCase();
  switch (status) {
    case 'failed':
    case 'rejected':
    case 'aborted':
      return [{
        type: 'reconciliation.failed',
        timestamp: now,
        data: { ...base, reason: `update_${status}`, update_status: report.update_status ?? status },
      }];
    default:
      return [];
  }
}

/** reconciliation.failed (timeout) when the open reconciliation is at least `timeoutMs` old at `now`. */
export function expireReconciliation(device: RegisteredDevice, now: string, timeoutMs: number): DeviceEvent[] {
  const open = openReconciliation(device);
  if (open === null) return [];
  const elapsed = elapsedMs(open.started_at, now);
  if (elapsed < timeoutMs) return [];
  return [{
    type: 'reconciliation.failed',
    timestamp: now,
    data: {
      target_version: open.target_version,
      started_at: open.started_at,
      duration_ms: elapsed,
      reason: 'timeout',
      timeout_ms: timeoutMs,
    },
  }];
}
