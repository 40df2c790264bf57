// Where replay reads history from: the database (infra/replay/queries.ts) or fixture files
// (infra/replay/fixture-source.ts). Every replay operation is written against this type only.
import type { DeviceState } from '../device/state.ts';
import type { StoredEvent } from '../recorded-event.ts';
import type { ReplayBase, ReplayEvent, StateAt } from './history.ts';

/** Who a device is, as far as listing needs. */
export type DeviceSummary = {
  uuid: string;
  device_name: string;
  device_type: string;
  fleet_id: string;
  registered_at: string;
};

/** A window's starting point and the events after it. */
export type EventWindow = {
  /** Covers only events at or before `since` (the initial state when there is no `since`). */
  base: ReplayBase;
  /** Events with version > base.version and timestamp <= until, in version order. */
  events: readonly ReplayEvent[];
};

/** How a device talks to devicetrail: HTTP calls, or MQTT (issue #18). */
export type Transport = 'http' | 'mqtt';

/** The first time a target version reached its device over a transport. */
export type TargetDelivery = { uuid: string; target_version: number; transport: Transport; delivered_at: string };

/** Events of one type per device over a period. */
export type EventCount = { uuid: string; count: number; first: string; last: string };

/** A device that is out of sync now. */
export type DriftingDevice = { summary: DeviceSummary; state: DeviceState; drift_since: string | null };

/** Progress callback for long reads: done out of total. */
export type Progress = (done: number, total: number) => void;

/** A store of device history replay can read. */
export type ReplaySource = {
  /** For messages: "database …" or "fixture file …". */
  description: string;
  /** The instant "now" means: the clock for a database, the last event for a fixture. */
  now: () => string;
  device: (uuid: string) => Promise<DeviceSummary | null>;
  devices: (filter?: { fleet?: string | undefined }) => Promise<DeviceSummary[]>;
  stateAt: (uuid: string, at: string) => Promise<StateAt>;
  window: (uuid: string, range: { since?: string | undefined; until: string }) => Promise<EventWindow>;
  /**
   * The window's events in batches, handed to `consume` as they are read (the database reads
   * them through a cursor, the next batch while one is consumed, a turn of the event loop
   * between), so a long window is never held in memory at once; absent: `window` reads it whole.
   */
  windowBatches?: (
    uuid: string,
    range: { since?: string | undefined; until: string },
  ) => Promise<{ base: ReplayBase; each: (consume: (events: readonly ReplayEvent[]) => void) => Promise<void> }>;
  /** Every column of a device's event rows in version order, bounds inclusive. */
  exportEvents: (
    uuid: string,
    range: { since?: string | undefined; until?: string | undefined },
  ) => AsyncIterable<StoredEvent>;
  /** Every device registered at `at`, with its state then. */
  fleetAt: (
    at: string,
    options?: { fleet?: string | undefined; onProgress?: Progress | undefined },
  ) => Promise<{ summary: DeviceSummary; result: StateAt }[]>;
  /** Per device: how many events of `eventType` fall in (from, to]. */
  eventCounts: (eventType: string, from: string, to: string) => Promise<EventCount[]>;
  /** Devices out of sync at `now()`. */
  driftingNow: () => Promise<DriftingDevice[]>;
  /**
   * When the given target versions of a device were delivered, per transport (a database
   * records them; absent for fixtures, which record no deliveries).
   */
  deliveries?: (uuid: string, versions: readonly number[]) => Promise<TargetDelivery[]>;
  /** The retention horizon (history before it is gone), or null; absent for fixtures. */
  horizon?: () => Promise<string | null>;
  /**
   * Awaited between slices of a long fold (buildHistoryPausing), so a server's other requests
   * are served meanwhile; absent (fixtures, the command line): folds run straight through.
   */
  pause?: () => Promise<void>;
};

/** Why replay cannot answer: unknown device, an instant before it existed or before the retention horizon. */
export class ReplayError extends Error {
  readonly code: 'device_not_found' | 'device_not_registered_yet' | 'invalid_range' | 'before_retention_horizon';
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ReplayError['code'], message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'ReplayError';
    this.code = code;
    this.details = details;
  }
}
