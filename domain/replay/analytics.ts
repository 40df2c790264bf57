// The seed's analytics questions, answered over a window ending now: how often targets
// change, which devices report most, how long devices take to reach a new target, and
// which devices drift now and since when. Works over any replay source.
import { driftDetail, type Reconciliation } from './drift.ts';
import { instantMs } from './history.ts';
import { driftOfWindow } from './service.ts';
import type { DeviceSummary, ReplaySource, TargetDelivery, Transport } from './source.ts';
import type { ReplayEvent } from './history.ts';
import { percentile } from './time.ts';

/** The period analysed: (from, to]. */
export type AnalyticsWindow = { from: string; to: string; duration_ms: number };

/** Events of one type per device, busiest first. */
export type Activity = {
  total: number;
  devices: number;
  per_hour: number;
  top: { uuid: string; device_name: string | null; count: number; per_hour: number; first: string; last: string }[];
};

/** Percentiles of a set of durations (nulls when the set is empty). */
export type DurationStats = { p50: number | null; p90: number | null; p99: number | null; max: number | null };

/**
 * One transport's share of the window's targets (issue #18): `delivered` targets reached their
 * device over it (delivery_ms: target update → first delivery over it; a target can be
 * delivered over both, a notice over MQTT and then the fetch over HTTP), and `converged` ones
 * were reached by a report that came over it (convergence_ms: target update → that report).
 */
export type TransportStats = {
  delivered: number;
  delivery_ms: DurationStats;
  converged: number;
  convergence_ms: DurationStats;
};

/** A target of the window, how it was reached, and over which transports. */
export type TargetReconciliation = Reconciliation & {
  uuid: string;
  device_name: string;
  /** First delivery per transport (absent: none recorded, e.g. from a fixture or before deliveries were recorded). */
  delivered: Partial<Record<Transport, string>>;
  /** The transport of the report that brought the device in sync; null when not converged or not by a report. */
  converged_over: Transport | null;
};

/** Reconciliation delays: target update → first instant in sync with that version. */
export type ReconciliationStats = {
  targets: number;
  converged: number;
  pending: number;
  superseded: number;
  delay_ms: { p50: number | null; p90: number | null; p99: number | null; max: number | null; mean: number | null };
  by_transport: Record<Transport, TransportStats>;
  slowest: TargetReconciliation[];
  waiting: TargetReconciliation[];
};

const TRANSPORTS: readonly Transport[] = ['http', 'mqtt'];

function durationStats(values: readonly number[]): DurationStats {
  return {
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: values.length === 0 ? null : values.reduce((a, b) => Math.max(a, b), 0),
  };
}

/** Event types a device's own report writes (the other types come from admins or the service). */
const REPORTED_TYPES: ReadonlySet<string> = new Set(['current_state.updated', 'reconciliation.completed']);

/** The transport of the event that converged a target, when it is a device's report. */
function transportOf(event: Pick<ReplayEvent, 'event_type' | 'source'> | undefined): Transport | null {
  if (event === undefined || !REPORTED_TYPES.has(event.event_type)) return null;
  return event.source === 'mqtt' ? 'mqtt' : 'http';
}

/** Delivery and convergence times per transport, over the window's targets. */
export function transportStats(targets: readonly TargetReconciliation[]): Record<Transport, TransportStats> {
  const stats = {} as Record<Transport, TransportStats>;
  for (const transport of TRANSPORTS) {
    const deliveries = targets.flatMap((t) => {
      const at = t.delivered[transport];
      return at === undefined ? [] : [Math.max(0, instantMs(at) - instantMs(t.set_at))];
    });
    const convergences = targets.filter((t) => t.converged_over === transport && t.delay_ms !== null)
      .map((t) => t.delay_ms!);
    stats[transport] = {
      delivered: deliveries.length,
      delivery_ms: durationStats(deliveries),
      converged: convergences.length,
      convergence_ms: durationStats(convergences),
    };
  }
  return stats;
}

/** Each transport's first delivery of a version. */
function firstDeliveries(
  deliveries: readonly TargetDelivery[],
  version: number,
): Partial<Record<Transport, string>> {
  const first: Partial<Record<Transport, string>> = {};
  for (const d of deliveries) {
    if (d.target_version !== version) continue;
    const known = first[d.transport];
    if (known === undefined || instantMs(d.delivered_at) < instantMs(known)) first[d.transport] = d.delivered_at;
  }
  return first;
}

/** Devices out of sync now. */
export type DriftingNow = {
  as_of: string;
  count: number;
  devices: {
    uuid: string;
    device_name: string;
    fleet_id: string;
    drift_since: string | null;
    for_ms: number | null;
    differed: Record<string, unknown>;
  }[];
};

/** Everything at once. */
export type Analytics = {
  window: AnalyticsWindow;
  target_changes: Activity;
  reports: Activity;
  reconciliation: ReconciliationStats;
  drifting_now: DriftingNow;
};

/** The window of `durationMs` ending at the source's now. */
export function analyticsWindow(source: ReplaySource, durationMs: number): AnalyticsWindow {
  const to = source.now();
  return { from: new Date(instantMs(to) - durationMs).toISOString(), to, duration_ms: durationMs };
}

async function names(source: ReplaySource): Promise<Map<string, DeviceSummary>> {
  return new Map((await source.devices()).map((d) => [d.uuid, d]));
}

/** How often events of a type happen, per device, busiest first. */
export async function activity(
  source: ReplaySource,
  eventType: string,
  window: AnalyticsWindow,
  top = 10,
): Promise<Activity> {
  const counts = await source.eventCounts(eventType, window.from, window.to);
  const known = await names(source);
  const hours = window.duration_ms / 3_600_000;
  const total = counts.reduce((sum, c) => sum + c.count, 0);
  return {
    total,
    devices: counts.length,
    per_hour: total / hours,
    top: counts.slice(0, top).map((c) => ({
      ...c,
      device_name: known.get(c.uuid)?.device_name ?? null,
      per_hour: c.count / hours,
    })),
  };
}

/** Delays between each target update in the window and the device reaching it. */
export async function reconciliationStats(
  source: ReplaySource,
  window: AnalyticsWindow,
  top = 10,
): Promise<ReconciliationStats> {
  const devices = await source.eventCounts('target_state.updated', window.from, window.to);
  const known = await names(source);
  const all: TargetReconciliation[] = [];
  for (const { uuid } of devices) {
    const events = await source.window(uuid, { since: window.from, until: window.to });
    const report = await driftOfWindow(source, events, { since: window.from, until: window.to });
    const deviceName = known.get(uuid)?.device_name ?? uuid;
    const versions = report.reconciliations.map((r) => r.target_version);
    const deliveries = source.deliveries === undefined ? [] : await source.deliveries(uuid, versions);
    const byId = new Map(events.events.map((e) => [e.event_id, e]));
    for (const r of report.reconciliations) {
      all.push({
        ...r,
        uuid,
        device_name: deviceName,
        delivered: firstDeliveries(deliveries, r.target_version),
        converged_over: r.converged_by === null ? null : transportOf(byId.get(r.converged_by.event_id)),
      });
    }
  }
  const delays = all.filter((r) => r.delay_ms !== null).map((r) => r.delay_ms!);
  return {
    targets: all.length,
    converged: delays.length,
    pending: all.filter((r) => r.status === 'pending').length,
    superseded: all.filter((r) => r.status === 'superseded').length,
    delay_ms: {
      p50: percentile(delays, 50),
      p90: percentile(delays, 90),
      p99: percentile(delays, 99),
      max: delays.length === 0 ? null : delays.reduce((a, b) => Math.max(a, b), 0),
      mean: delays.length === 0 ? null : delays.reduce((a, b) => a + b, 0) / delays.length,
    },
    by_transport: transportStats(all),
    slowest: all.filter((r) => r.delay_ms !== null).sort((a, b) => b.delay_ms! - a.delay_ms!).slice(0, top),
    waiting: all.filter((r) => r.status === 'pending').sort((a, b) => (b.waiting_ms ?? 0) - (a.waiting_ms ?? 0)).slice(
      0,
      top,
    ),
  };
}

/** Devices out of sync now, longest first. */
export async function driftingNow(source: ReplaySource): Promise<DriftingNow> {
  const asOf = source.now();
  const devices = (await source.driftingNow()).map(({ summary, state, drift_since }) => ({
    uuid: summary.uuid,
    device_name: summary.device_name,
    fleet_id: summary.fleet_id,
    drift_since,
    for_ms: drift_since === null ? null : Math.max(0, instantMs(asOf) - instantMs(drift_since)),
    differed: driftDetail(state),
  })).sort((a, b) => (b.for_ms ?? -1) - (a.for_ms ?? -1));
  return { as_of: asOf, count: devices.length, devices };
}

/** All analytics over the window of `durationMs` ending now. */
export async function computeAnalytics(source: ReplaySource, durationMs: number, top = 10): Promise<Analytics> {
  const window = analyticsWindow(source, durationMs);
  return {
    window,
    target_changes: await activity(source, 'target_state.updated', window, top),
    reports: await activity(source, 'current_state.updated', window, top),
    reconciliation: await reconciliationStats(source, window, top),
    drifting_now: await driftingNow(source),
  };
}
