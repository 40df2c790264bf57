// decide: command + state → new events, or a DomainError. Time comes in as `now`.
import { DomainError } from '../errors.ts';
import { jsonEqual } from './drift.ts';
import { mergeReport } from './evolve.ts';
import type { DeviceEvent, ReportedApp, TargetState } from './events.ts';
import type { DeviceState, RegisteredDevice } from './state.ts';

/** Registration data, already validated and normalised by the shell. */
export type RegisterDevice = {
  type: 'register_device';
  now: string;
  device_name: string;
  device_type: string;
  fleet_id: string;
  mac_address: string | null;
  ip_address: string | null;
  os_version: string | null;
  supervisor_version: string | null;
  provisioning_key_id: string;
};

/** An admin sets the target; `expected_version` comes from `If-Match`. */
export type SetTargetState = {
  type: 'set_target_state';
  now: string;
  target: TargetState;
  expected_version?: number | undefined;
};

/** A device reports what it runs; fields are already sorted into buckets. */
export type ReportState = {
  type: 'report_state';
  now: string;
  apps?: Record<string, ReportedApp> | undefined;
  system: Record<string, string | number | null>;
  resources: Record<string, number | null>;
  config?: Record<string, unknown> | undefined;
  update_status?: string | undefined;
};

/** An admin enables or disables a device. */
export type SetActive = {
  type: 'set_active';
  now: string;
  is_active: boolean;
  reason?: string | undefined;
};

export type DeviceCommand = RegisterDevice | SetTargetState | ReportState | SetActive;

function registered(state: DeviceState): RegisteredDevice {
  if (state.status !== 'registered') throw new DomainError('device_not_found', 'device is not registered');
  return state;
}

/** Decides which events a command produces against the current state. */
export function decide(command: DeviceCommand, state: DeviceState): DeviceEvent[] {
  switch (command.type) {
    case 'register_device': {
      if (state.status === 'registered') {
        throw new DomainError('device_already_registered', 'a device with this uuid is already registered');
      }
      const { type: _t, now, ...data } = command;
      return [{ type: 'device.provisioned', timestamp: now, data }];
    }
    case 'set_target_state': {
      const device = registered(state);
      const currentVersion = device.target?.version ?? 0;
      if (command.expected_version !== undefined && command.expected_version !== currentVersion) {
        throw new DomainError('target_version_mismatch', `target version is ${currentVersion}, not ${command.expected_version}`, { current_version: currentVersion });
      }
      const old = device.target === null ? null : { apps: device.target.apps, config: device.target.config };
      const oldApps = Object.keys(old?.apps ?? {});
      const newApps = Object.keys(command.target.apps);
      return [{
        type: 'target_state.updated',
        timestamp: command.now,
        data: {
          version: currentVersion + 1,
          new_state: command.target,
          old_state: old,
          apps_added: newApps.filter((id) => !oldApps.includes(id)),
          apps_removed: oldApps.filter((id) => !newApps.includes(id)),
          apps_count: newApps.length,
        },
      }];
    }
    case 'report_state': {
      const device = registered(state);
      if (!device.is_active) throw new DomainError('device_inactive', 'device is disabled');
      const { type: _t, now, ...report } = command;
      const merged = mergeReport(device.current, report, now);
      if (device.current !== null && jsonEqual({ ...merged, reported_at: '' }, { ...device.current, reported_at: '' })) return [];
      const data: DeviceEvent & { type: 'current_state.updated' } = {
        type: 'current_state.updated',
        timestamp: now,
        data: { system: report.system, resources: report.resources, apps_count: Object.keys(merged.apps).length },
      };
      if (report.apps !== undefined) data.data.apps = report.apps;
      if (report.config !== undefined) data.data.config = report.config;
      if (report.update_status !== undefined) data.data.update_status = report.update_status;
      return [data];
    }
    case 'set_active': {
      const device = registered(state);
      if (device.is_active === command.is_active) return [];
      const data = {
        device_name: device.device_name,
        device_type: device.device_type,
        previous_state: device.is_active ? 'active' as const : 'inactive' as const,
        new_state: command.is_active ? 'active' as const : 'inactive' as const,
        reason: command.reason ?? null,
        changed_at: command.now,
      };
      return [command.is_active
        ? { type: 'device.online', timestamp: command.now, data }
        : { type: 'device.offline', timestamp: command.now, data }];
    }
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}
