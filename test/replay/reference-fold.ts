// The fold as it was before the replay speed-up (issue 3), kept verbatim as the reference the
// optimised `evolve` is compared against (test/replay/fold-reference.test.ts). Do not optimise
// this file: its only job is to be obviously the original meaning.
import { computeDrift } from '../../domain/device/drift.ts';
// The one fix taken over from evolve.ts since the freeze (hardening issue, finding 9): lookups by
// app id use `own`, where the frozen fold threw a TypeError for ids such as "constructor" (no
// stored history can hold such events: the API answered 500 before appending them).
import { own } from '../../domain/own.ts';
import type { DeviceEvent, DeviceEventOf, ReportedApp } from '../../domain/device/events.ts';
import { indexServices, reportedServices } from '../../domain/device/services.ts';
import type { ContainerState, CurrentState, DeviceState, RegisteredDevice } from '../../domain/device/state.ts';

/**
 * Bumped whenever evolve changes meaning; snapshots of another fold version are ignored.
 * 2: lifecycle (containers, images, volumes, networks, reconciliation, connectivity).
 * 3: the device agent (issue #15): `application_id` and `agent_version` from registration, and
 *    a service's `imageName` counts as its image (drift, image events, forgotten images).
 * 4: secrets (issue #15, item 3): a service's reported environment (`config.environment`) is
 *    compared with its target's, by marker (drift `wrong_environment`); reports stored before
 *    the edge dropped unknown service fields may hold one.
 */
export const REFERENCE_FOLD_VERSION = 4;

/** Applies one event to a device state. Unknown-to-this-state events are ignored, never thrown. */
export function referenceEvolve(state: DeviceState, event: DeviceEvent): DeviceState {
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
      application_id: event.data.application_id ?? null,
      agent_version: event.data.agent_version ?? null,
      is_active: true,
      target: null,
      current: null,
      drift: computeDrift(null, null),
      drift_since: null,
      containers: {},
      images: {},
      volumes: {},
      networks: {},
      reconciliation: null,
      connectivity: { status: 'online', since: event.timestamp },
      registered_at: event.timestamp,
      updated_at: event.timestamp,
      version,
    };
  }
  if (state.status !== 'registered') return { ...state, version } as DeviceState;
  const next = applyToRegistered(state, event);
  return withDrift(state, { ...next, version, updated_at: event.timestamp }, event.timestamp);
}

function applyToRegistered(
  state: RegisteredDevice,
  event: Exclude<DeviceEvent, { type: 'device.provisioned' }>,
): RegisteredDevice {
  switch (event.type) {
    case 'target_state.updated':
      return {
        ...state,
        target: {
          apps: event.data.new_state.apps,
          config: event.data.new_state.config,
          version: event.data.version,
          updated_at: event.timestamp,
        },
      };
    case 'current_state.updated': {
      const current = referenceMergeReport(state.current, event.data, event.timestamp);
      if (event.data.apps === undefined) return { ...state, current };
      return { ...state, current, ...forgetUnreported(state, event.data.apps) };
    }
    case 'device.online':
      return { ...state, is_active: true };
    case 'device.offline':
      return { ...state, is_active: false };
    case 'container.started':
      return {
        ...withContainer(state, event, 'running'),
        images: event.data.image === null || Object.hasOwn(state.images, event.data.image) ? state.images : {
          ...state.images,
          [event.data.image]: {
            app_id: event.data.app_id,
            service_name: event.data.service_name,
            since: event.timestamp,
          },
        },
      };
    case 'container.stopped':
      // `removed`: the service left the report, so the container is gone, not just stopped
      if (event.data.status === 'removed') {
        return { ...state, containers: withoutContainer(state.containers, event.data.app_id, event.data.service_name) };
      }
      return withContainer(state, event, 'stopped');
    case 'container.crashed':
      return withContainer(state, event, 'crashed');
    case 'image.pulled':
      if (event.data.image === null) return state;
      return {
        ...state,
        images: {
          ...state.images,
          [event.data.image]: {
            app_id: event.data.app_id,
            service_name: event.data.service_name,
            since: event.timestamp,
          },
        },
      };
    case 'image.pull_failed':
      return state;
    case 'volume.created':
      return { ...state, volumes: withName(state.volumes, event.data.app_id, event.data.name) };
    case 'volume.removed':
      return { ...state, volumes: withoutName(state.volumes, event.data.app_id, event.data.name) };
    case 'network.created':
      return { ...state, networks: withName(state.networks, event.data.app_id, event.data.name) };
    case 'network.removed':
      return { ...state, networks: withoutName(state.networks, event.data.app_id, event.data.name) };
    case 'reconciliation.started':
      return {
        ...state,
        reconciliation: { status: 'open', target_version: event.data.target_version, started_at: event.timestamp },
      };
    case 'reconciliation.completed':
      return {
        ...state,
        reconciliation: {
          status: 'completed',
          target_version: event.data.target_version,
          started_at: event.data.started_at,
          ended_at: event.timestamp,
          duration_ms: event.data.duration_ms,
        },
      };
    case 'reconciliation.failed':
      return {
        ...state,
        reconciliation: {
          status: 'failed',
          target_version: event.data.target_version,
          started_at: event.data.started_at,
          ended_at: event.timestamp,
          duration_ms: event.data.duration_ms,
          reason: event.data.reason,
        },
      };
    case 'device.connection_lost':
      return {
        ...state,
        connectivity: { status: 'lost', since: event.timestamp, last_seen_at: event.data.last_seen_at },
      };
    case 'device.connection_restored':
      return { ...state, connectivity: { status: 'online', since: event.timestamp } };
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}

type ContainerEvent = DeviceEventOf<'container.started' | 'container.stopped' | 'container.crashed'>;

function withContainer(
  state: RegisteredDevice,
  event: ContainerEvent,
  status: ContainerState['status'],
): RegisteredDevice {
  const { app_id: appId, service_name: serviceName } = event.data;
  const previous = own(own(state.containers, appId) ?? {}, serviceName);
  const container: ContainerState = {
    app_id: appId,
    service_name: serviceName,
    container_id: event.data.container_id ?? previous?.container_id ?? null,
    image: event.data.image ?? previous?.image ?? null,
    status,
    exit_code: status === 'running' ? null : event.data.exit_code,
    restart_count: event.data.restart_count ?? previous?.restart_count ?? 0,
    since: event.timestamp,
  };
  return {
    ...state,
    containers: { ...state.containers, [appId]: { ...state.containers[appId], [serviceName]: container } },
  };
}

function withoutContainer(
  containers: RegisteredDevice['containers'],
  appId: string,
  serviceName: string,
): RegisteredDevice['containers'] {
  const app = own(containers, appId);
  if (app === undefined || !Object.hasOwn(app, serviceName)) return containers;
  const { [serviceName]: _gone, ...rest } = app;
  const { [appId]: _app, ...others } = containers;
  return Object.keys(rest).length === 0 ? others : { ...others, [appId]: rest };
}

/**
 * A report with apps lists every service the device has: containers of services it no
 * longer lists are forgotten, and so are images no listed service uses (an image stays
 * while its service is listed without an image field, as the seed's shape has none).
 */
function forgetUnreported(
  state: RegisteredDevice,
  apps: Record<string, ReportedApp>,
): Pick<RegisteredDevice, 'containers' | 'images'> {
  const services = reportedServices(apps);
  const index = indexServices(services);
  const containers: RegisteredDevice['containers'] = {};
  for (const [appId, byService] of Object.entries(state.containers)) {
    const kept = Object.fromEntries(Object.entries(byService).filter(([name]) => index.get(appId)?.has(name) === true));
    if (Object.keys(kept).length > 0) containers[appId] = kept;
  }
  const used = new Set(services.flatMap((s) => (s.image === null ? [] : [s.image])));
  const images = Object.fromEntries(
    Object.entries(state.images).filter(([image, owner]) =>
      used.has(image) || index.get(owner.app_id)?.get(owner.service_name)?.image === null
    ),
  );
  return { containers, images };
}

function withName(names: Record<string, string[]>, appId: string, name: string): Record<string, string[]> {
  const current = own(names, appId) ?? [];
  if (current.includes(name)) return names;
  return { ...names, [appId]: [...current, name].sort() };
}

function withoutName(names: Record<string, string[]>, appId: string, name: string): Record<string, string[]> {
  const current = own(names, appId);
  if (current === undefined || !current.includes(name)) return names;
  const rest = current.filter((n) => n !== name);
  const { [appId]: _gone, ...others } = names;
  return rest.length === 0 ? others : { ...others, [appId]: rest };
}

/** Merges a report into the current state: apps replace as a whole, fields merge. */
export function referenceMergeReport(
  current: CurrentState | null,
  report: {
    apps?: CurrentState['apps'] | undefined;
    system: CurrentState['system'];
    resources: CurrentState['resources'];
    config?: Record<string, unknown> | undefined;
    update_status?: string | undefined;
  },
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
  // only the target and the current report move drift; lifecycle events leave it as it was
  if (after.target === before.target && after.current === before.current) return after;
  const drift = computeDrift(after.target, after.current);
  let driftSince = before.drift_since;
  if (drift.in_sync) driftSince = null;
  else if (before.drift.in_sync || driftSince === null) driftSince = at;
  return { ...after, drift, drift_since: driftSince };
}

/** Folds events from the initial state (or a given state). */
export function referenceFold(events: Iterable<DeviceEvent>, from: DeviceState): DeviceState {
  let state = from;
  for (const event of events) state = referenceEvolve(state, event);
  return state;
}
