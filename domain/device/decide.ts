// decide: command + state → new events, or a DomainError. Time comes in as `now`.
import { DomainError } from '../errors.ts';
import { connectionLostIfSilent, connectionRestoredIfLost } from './connectivity.ts';
import { jsonEqual } from './drift.ts';
import { evolve, mergeReport } from './evolve.ts';
import type { DeviceEvent, DeviceEventType, ReportedApp, TargetState } from './events.ts';
import { deriveLifecycle } from './lifecycle.ts';
import { expireReconciliation, reconciliationAfterTarget } from './reconciliation.ts';
import type { DeviceReportedEvent } from './reported-events.ts';
import type { CurrentState, DeviceState, RegisteredDevice } from './state.ts';
import { isTelemetrySystemField } from './telemetry.ts';

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
  /** The device agent's `applicationId` and `agentVersion` (issue #15); left out, they are left out of the event. */
  application_id?: string | number | null;
  agent_version?: string | null;
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

/** Any authenticated call of the device itself (a heartbeat): restores a lost connection. */
export type RecordContact = { type: 'record_contact'; now: string };

/** The connectivity sweeper: the device's last contact (from the read model) and the timeout. */
export type MarkConnectionLost = {
  type: 'mark_connection_lost';
  now: string;
  last_contact_at: string;
  timeout_ms: number;
};

/** The reconciliation sweeper: fail the open reconciliation once it is `timeout_ms` old. */
export type ExpireReconciliation = { type: 'expire_reconciliation'; now: string; timeout_ms: number };

/** Lifecycle events a device observed itself, validated by the shell. */
export type RecordDeviceEvents = {
  type: 'record_device_events';
  now: string;
  events: (DeviceReportedEvent & { observed_at?: string | undefined })[];
};

export type DeviceCommand =
  | RegisterDevice
  | SetTargetState
  | ReportState
  | SetActive
  | RecordContact
  | MarkConnectionLost
  | ExpireReconciliation
  | RecordDeviceEvents;

/** Events that happen in response to another event of the same decision (causation). */
const causeTypes: ReadonlySet<DeviceEventType> = new Set(['current_state.updated', 'target_state.updated']);
const derivedTypes: ReadonlySet<DeviceEventType> = new Set([
  'container.started',
  'container.stopped',
  'container.crashed',
  'image.pulled',
  'image.pull_failed',
  'volume.created',
  'volume.removed',
  'network.created',
  'network.removed',
  'reconciliation.started',
  'reconciliation.completed',
  'reconciliation.failed',
]);

/**
 * For each event of one decision, the index of the event that caused it: a derived
 * lifecycle or reconciliation event is caused by the nearest report or target update
 * before it; anything else has no cause (null).
 */
export function causationIndexes(events: readonly DeviceEvent[]): (number | null)[] {
  let cause: number | null = null;
  return events.map((event, i) => {
    if (causeTypes.has(event.type)) {
      cause = i;
      return null;
    }
    return derivedTypes.has(event.type) ? cause : null;
  });
}

/**
 * Whether a merged report says what the current state already says, its time and its
 * telemetry aside (issue #15: resources and uptime go to the metrics series, and a report
 * that changes only them appends no event): the flat system fields first, the nested ones last.
 */
function sameState(merged: CurrentState, current: CurrentState): boolean {
  return sameFields(merged.system, current.system, isTelemetrySystemField) &&
    merged.update_status === current.update_status &&
    jsonEqual(merged.config, current.config) && jsonEqual(merged.apps, current.apps);
}

/** A report that says nothing but telemetry: as a device's first report, it has no state to record. */
function onlyTelemetry(report: Omit<ReportState, 'type' | 'now'>): boolean {
  return report.apps === undefined && report.config === undefined && report.update_status === undefined &&
    Object.keys(report.system).every(isTelemetrySystemField);
}

/** The same keys with the same values (keys `skip` names aside), without allocating. */
function sameFields(a: Record<string, unknown>, b: Record<string, unknown>, skip: (key: string) => boolean): boolean {
  let keys = 0;
  for (const key in a) {
    if (!Object.hasOwn(a, key) || skip(key)) continue;
    if (!Object.hasOwn(b, key) || !jsonEqual(a[key], b[key])) return false;
    keys += 1;
  }
  for (const key in b) if (Object.hasOwn(b, key) && !skip(key)) keys -= 1;
  return keys === 0;
}

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
        throw new DomainError(
          'target_version_mismatch',
          `target version is ${currentVersion}, not ${command.expected_version}`,
          { current_version: currentVersion },
        );
      }
      const old = device.target === null ? null : { apps: device.target.apps, config: device.target.config };
      const oldApps = Object.keys(old?.apps ?? {});
      const newApps = Object.keys(command.target.apps);
      const updated: DeviceEvent = {
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
      };
      return [updated, ...reconciliationAfterTarget(device, registered(evolve(device, updated)), command.now)];
    }
    case 'report_state': {
      const device = registered(state);
      if (!device.is_active) throw new DomainError('device_inactive', 'device is disabled');
      const { type: _t, now, ...report } = command;
      const restored = connectionRestoredIfLost(device, now);
      const merged = mergeReport(device.current, report, now);
      // telemetry alone is no state change: the shell writes it to the metrics series
      if (device.current === null ? onlyTelemetry(report) : sameState(merged, device.current)) return restored;
      const data: DeviceEvent & { type: 'current_state.updated' } = {
        type: 'current_state.updated',
        timestamp: now,
        data: { system: report.system, resources: report.resources, apps_count: Object.keys(merged.apps).length },
      };
      if (report.apps !== undefined) data.data.apps = report.apps;
      if (report.config !== undefined) data.data.config = report.config;
      if (report.update_status !== undefined) data.data.update_status = report.update_status;
      return [...restored, data, ...deriveLifecycle(device, report, now)];
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
      return [
        command.is_active
          ? { type: 'device.online', timestamp: command.now, data }
          : { type: 'device.offline', timestamp: command.now, data },
      ];
    }
    case 'record_contact':
      return state.status === 'registered' ? connectionRestoredIfLost(state, command.now) : [];
    case 'mark_connection_lost':
      return state.status === 'registered'
        ? connectionLostIfSilent(state, command.last_contact_at, command.now, command.timeout_ms)
        : [];
    case 'expire_reconciliation':
      return state.status === 'registered' ? expireReconciliation(state, command.now, command.timeout_ms) : [];
    case 'record_device_events': {
      const device = registered(state);
      if (!device.is_active) throw new DomainError('device_inactive', 'device is disabled');
      // stored at arrival time, so timestamps ascend with versions; the device's own clock goes in observed_at
      return command.events.map(({ type, data, observed_at: observedAt }) =>
        ({
          type,
          timestamp: command.now,
          data: observedAt === undefined ? data : { ...data, observed_at: observedAt },
        }) as DeviceEvent
      );
    }
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}
