// The folded state of one device.
import type { Drift } from './drift.ts';
import type { ReportedApp, TargetState } from './events.ts';

/** What the device last said it runs, merged over all its reports. */
export type CurrentState = {
  apps: Record<string, ReportedApp>;
  system: Record<string, string | number | null>;
  resources: Record<string, number | null>;
  config?: Record<string, unknown> | undefined;
  update_status?: string | undefined;
  reported_at: string;
};

/** The target the device should run, with its version (1, 2, …). */
export type VersionedTarget = TargetState & { version: number; updated_at: string };

/** A device that has registered. */
export type RegisteredDevice = {
  status: 'registered';
  device_name: string;
  device_type: string;
  fleet_id: string;
  mac_address: string | null;
  ip_address: string | null;
  os_version: string | null;
  supervisor_version: string | null;
  provisioning_key_id: string;
  is_active: boolean;
  target: VersionedTarget | null;
  current: CurrentState | null;
  drift: Drift;
  /** When the device last went out of sync; null while in sync. */
  drift_since: string | null;
  registered_at: string;
  updated_at: string;
  /** Number of events folded: the aggregate version. */
  version: number;
};

/** Device state is a union on `status`. */
export type DeviceState = { status: 'unregistered'; version: 0 } | RegisteredDevice;

/** The state before any event. */
export const initialState = (): DeviceState => ({ status: 'unregistered', version: 0 });
