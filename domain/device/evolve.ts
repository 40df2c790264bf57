// evolve: the one fold used by the API, replay, snapshots and fixtures.
import { own } from '../own.ts';
import { computeDrift, type Drift, sameJson } from './drift.ts';
import type { DeviceEvent, DeviceEventOf, ReportedApp } from './events.ts';
import { imageOf, indexServices, reportedServices } from './services.ts';
import {
  type ContainerState,
  copyRegistered,
  type CurrentState,
  type DeviceState,
  type RegisteredDevice,
} from './state.ts';

/**
 * Bumped whenever evolve changes meaning; snapshots of another fold version are ignored.
 * 2: lifecycle (containers, images, volumes, networks, reconciliation, connectivity).
 * 3: the device agent (issue #15): `application_id` and `agent_version` from registration, and
 *    a service's `imageName` counts as its image (drift, image events, forgotten images).
 * 4: secrets (issue #15, item 3): a service's reported environment (`config.environment`) is
 *    compared with its target's, by marker (drift `wrong_environment`); reports stored before
 *    the edge dropped unknown service fields may hold one.
 */
export const FOLD_VERSION = 4;

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
  // { ...state, ...changes, version, updated_at }, with the copy made by copyRegistered
  const next = copyRegistered(state);
  Object.assign(next, changesOf(state, event));
  next.version = version;
  next.updated_at = event.timestamp;
  // only the target and the current report move drift; lifecycle events leave it as it was
  if (next.target === state.target && next.current === state.current) return next;
  const drift = driftAfter(state, next);
  next.drift = drift;
  next.drift_since = drift.in_sync
    ? null
    : state.drift.in_sync || state.drift_since === null
    ? event.timestamp
    : state.drift_since;
  return next;
}

/** The fields an event changes, with their new values. */
function changesOf(
  state: RegisteredDevice,
  event: Exclude<DeviceEvent, { type: 'device.provisioned' }>,
): Partial<RegisteredDevice> {
  switch (event.type) {
    case 'target_state.updated':
      return {
        target: {
          apps: event.data.new_state.apps,
          config: event.data.new_state.config,
          version: event.data.version,
          updated_at: event.timestamp,
        },
      };
    case 'current_state.updated': {
      const current = mergeReport(state.current, event.data, event.timestamp);
      if (event.data.apps === undefined || nothingToForget(state, current.apps)) return { current };
      return { current, ...forgetUnreported(state, current.apps) };
    }
    case 'device.online':
      return { is_active: true };
    case 'device.offline':
      return { is_active: false };
    case 'container.started':
      return {
        containers: withContainer(state.containers, event, 'running'),
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
        return { containers: withoutContainer(state.containers, event.data.app_id, event.data.service_name) };
      }
      return { containers: withContainer(state.containers, event, 'stopped') };
    case 'container.crashed':
      return { containers: withContainer(state.containers, event, 'crashed') };
    case 'image.pulled':
      if (event.data.image === null) return {};
      return {
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
      return {};
    case 'volume.created':
      return { volumes: withName(state.volumes, event.data.app_id, event.data.name) };
    case 'volume.removed':
      return { volumes: withoutName(state.volumes, event.data.app_id, event.data.name) };
    case 'network.created':
      return { networks: withName(state.networks, event.data.app_id, event.data.name) };
    case 'network.removed':
      return { networks: withoutName(state.networks, event.data.app_id, event.data.name) };
    case 'reconciliation.started':
      return {
        reconciliation: { status: 'open', target_version: event.data.target_version, started_at: event.timestamp },
      };
    case 'reconciliation.completed':
      return {
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
      return { connectivity: { status: 'lost', since: event.timestamp, last_seen_at: event.data.last_seen_at } };
    case 'device.connection_restored':
      return { connectivity: { status: 'online', since: event.timestamp } };
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}

type ContainerEvent = DeviceEventOf<'container.started' | 'container.stopped' | 'container.crashed'>;

function withContainer(
  containers: RegisteredDevice['containers'],
  event: ContainerEvent,
  status: ContainerState['status'],
): RegisteredDevice['containers'] {
  const { app_id: appId, service_name: serviceName } = event.data;
  const previous = own(own(containers, appId) ?? {}, serviceName);
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
  if (appId === '__proto__' || serviceName === '__proto__') {
    return { ...containers, [appId]: { ...containers[appId], [serviceName]: container } };
  }
  const app = copyRecord(own(containers, appId) ?? {});
  app[serviceName] = container;
  const next = copyRecord(containers);
  next[appId] = app;
  return next;
}

/**
 * `{ ...record }` for the state's records: spread is several times slower on objects with
 * integer-like keys (app ids such as "4000", which V8 keeps apart as elements), and a full
 * replay copies the containers on every container event. Assigning the own keys in their
 * order gives the same object; a "__proto__" key, which assignment would turn into the
 * prototype, is left to the spread (as withContainer does when it is the key it sets).
 */
function copyRecord<T>(record: Record<string, T>): Record<string, T> {
  const copy: Record<string, T> = {};
  const keys = Object.keys(record);
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i]!;
    if (key === '__proto__') return { ...record };
    copy[key] = record[key]!;
  }
  return copy;
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

/**
 * True when forgetUnreported would keep every container and image (most reports list the
 * same services as the last one): checked by lookups, without building the service index.
 */
function nothingToForget(state: RegisteredDevice, apps: Record<string, ReportedApp>): boolean {
  // forgetUnreported's assignment `containers[appId] = …` turns an app id "__proto__" into a
  // prototype, and rebuilds such an object without it: leave those cases to it
  if (Object.getPrototypeOf(state.containers) !== Object.prototype) return false;
  for (const appId of Object.keys(state.containers)) {
    if (appId === '__proto__') return false;
    const names = Object.keys(state.containers[appId]!);
    if (names.length === 0) return false; // forgetUnreported drops an app left without containers
    for (const name of names) {
      if (listedService(apps, appId, name) === undefined) return false;
    }
  }
  for (const image of Object.keys(state.images)) {
    const owner = state.images[image]!;
    const own = listedService(apps, owner.app_id, owner.service_name);
    const ownImage = own === undefined ? undefined : imageOf(own);
    if (own !== undefined && (ownImage === undefined || ownImage === image)) continue;
    if (!imageListed(apps, image)) return false;
  }
  return true;
}

/** A service of the report by app id and name, as reportedServices flattens them; undefined when not listed. */
function listedService(
  apps: Record<string, ReportedApp>,
  appId: string,
  name: string,
): { image?: string | undefined; imageName?: unknown } | undefined {
  if (!Object.hasOwn(apps, appId)) return undefined;
  const app = apps[appId]!;
  if (app.services === undefined) return name === appId ? app : undefined;
  return Object.hasOwn(app.services, name) ? app.services[name] : undefined;
}

/** True when some listed service reports `image` (as `image` or `imageName`). */
function imageListed(apps: Record<string, ReportedApp>, image: string): boolean {
  for (const app of Object.values(apps)) {
    if (app.services === undefined) {
      if (imageOf(app) === image) return true;
      continue;
    }
    for (const service of Object.values(app.services)) {
      if (imageOf(service) === image) return true;
    }
  }
  return false;
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
export function mergeReport(
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
    apps: report.apps === undefined ? current?.apps ?? {} : previousIfSame(current?.apps, report.apps),
    system: { ...current?.system, ...report.system },
    resources: { ...current?.resources, ...report.resources },
    reported_at: reportedAt,
  };
  const config = report.config === undefined ? current?.config : previousIfSame(current?.config, report.config);
  if (config !== undefined) merged.config = config;
  const updateStatus = report.update_status ?? current?.update_status;
  if (updateStatus !== undefined) merged.update_status = updateStatus;
  return merged;
}

/**
 * The previous value when the new one is the same JSON (same keys in the same order), so a
 * report repeating its apps keeps the very same object and the fold can tell by identity that
 * they did not change.
 */
function previousIfSame<T>(previous: T | undefined, next: T): T {
  return previous !== undefined && sameJson(previous, next) ? previous : next;
}

/**
 * The drift after the target or the report changed. When the target, the reported apps and
 * the reported config are the same objects as before (see previousIfSame), it is the drift
 * already computed from them.
 */
function driftAfter(before: RegisteredDevice, after: RegisteredDevice): Drift {
  const was = before.current;
  const now = after.current;
  if (
    after.target === before.target && was !== null && now !== null && now.apps === was.apps && now.config === was.config
  ) return before.drift;
  return computeDrift(after.target, now);
}

/** Folds events from the initial state (or a given state). */
export function fold(events: Iterable<DeviceEvent>, from: DeviceState): DeviceState {
  let state = from;
  for (const event of events) state = evolve(state, event);
  return state;
}
