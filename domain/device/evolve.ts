// evolve: the one fold used by the API, replay, snapshots and fixtures.
import { computeDrift } from './drift.ts';
import type { DeviceEvent } from './events.ts';
import type { CurrentState, DeviceState, RegisteredDevice } from './state.ts';

/** Bumped whenever evolve changes meaning; snapshots of another fold version are ignored. */
export const FOLD_VERSION = 1;

/** Applies one event to a device state. Unknown-to-this-state events are ignored, never thrown. */
export function evolve(state: DeviceState, event: DeviceEvent): DeviceState {
  const version = state.version + 1;
  if (event.type === 'device.provisioned') {
    if (state.status === 'registered') return { ...state, version };
    return {
      status: 'registered',
      device_name: event.data.device_name,
      device_type: event.data.device_type,
      fleet_id: event.data.fleet_id,
      mac_address: event.data.mac_address,
      ip_address: event.data.ip_address,
      os_version: event.data.os_version,
      supervisor_version: event.data.supervisor_version,
      provisioning_key_id: event.data.provisioning_key_id,
      is_active: true,
      target: null,
      current: null,
      drift: computeDrift(null, null),
      drift_since: null,
      registered_at: event.timestamp,
      updated_at: event.timestamp,
      version,
    };
  }
  if (state.status !== 'registered') return { ...state, version } as DeviceState;
  const next = applyToRegistered(state, event);
  return withDrift(state, { ...next, version, updated_at: event.timestamp }, event.timestamp);
}

function applyToRegistered(state: RegisteredDevice, event: Exclude<DeviceEvent, { type: 'device.provisioned' }>): RegisteredDevice {
  switch (event.type) {
    case 'target_state.updated':
      return {
        ...state,
        target: { apps: event.data.new_state.apps, config: event.data.new_state.config, version: event.data.version, updated_at: event.timestamp },
      };
    case 'current_state.updated':
      return { ...state, current: mergeReport(state.current, event.data, event.timestamp) };
    case 'device.online':
      return { ...state, is_active: true };
    case 'device.offline':
      return { ...state, is_active: false };
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}

/** Merges a report into the current state: apps replace as a whole, fields merge. */
export function mergeReport(
  current: CurrentState | null,
  report: { apps?: CurrentState['apps'] | undefined; system: CurrentState['system']; resources: CurrentState['resources']; config?: Record<string, unknown> | undefined; update_status?: string | undefined },
  reportedAt: string,
): CurrentState {
  const merged: CurrentState = {
    apps: report.apps ?? current?.apps ?? {},
    system: { ...current?.system, ...report.system },
    resources: { ...current?.resources, ...report.resources },
    reported_at: reportedAt,
  };
  const config = report.config ?? current?.config;
  if (config !== undefined) merged.config = config;
  const updateStatus = report.update_status ?? current?.update_status;
  if (updateStatus !== undefined) merged.update_status = updateStatus;
  return merged;
}

function withDrift(before: RegisteredDevice, after: RegisteredDevice, at: string): RegisteredDevice {
  const drift = computeDrift(after.target, after.current);
  let driftSince = before.drift_since;
  if (drift.in_sync) driftSince = null;
  else if (before.drift.in_sync || driftSince === null) driftSince = at;
  return { ...after, drift, drift_since: driftSince };
}

/** Folds events from the initial state (or a given state). */
export function fold(events: Iterable<DeviceEvent>, from: DeviceState): DeviceState {
  let state = from;
  for (const event of events) state = evolve(state, event);
  return state;
}
