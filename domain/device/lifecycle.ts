// Lifecycle derivation: the events a state report implies, from the transitions between
// the folded state before it and the report. Pure; `now` is the report's instant.
import type { DeviceEvent, DeviceEventOf, StateReport } from './events.ts';
import { reconciliationAfterReport } from './reconciliation.ts';
import { containerPhase, indexServices, type ObservedService, reportedServices } from './services.ts';
import type { ContainerState, DeviceState, RegisteredDevice } from './state.ts';
import { own } from '../own.ts';

type ContainerEventType = 'container.started' | 'container.stopped' | 'container.crashed';

/**
 * The events `report` implies against `previous`, in the order they happened on the device:
 * networks and volumes created, then per service image pull results and container
 * transitions, containers of services no longer reported stopped, volumes and networks
 * removed, and last the reconciliation outcome. Fields a report leaves out derive nothing.
 */
export function deriveLifecycle(previous: DeviceState, report: StateReport, now: string): DeviceEvent[] {
  if (previous.status !== 'registered') return [];
  const events: DeviceEvent[] = [];
  if (report.apps !== undefined) {
    const networks = namedResourceChanges(previous.networks, report.apps, 'networks');
    const volumes = namedResourceChanges(previous.volumes, report.apps, 'volumes');
    for (const [appId, name] of networks.created) {
      events.push({ type: 'network.created', timestamp: now, data: { app_id: appId, name } });
    }
    for (const [appId, name] of volumes.created) {
      events.push({ type: 'volume.created', timestamp: now, data: { app_id: appId, name } });
    }
    events.push(...serviceEvents(previous, reportedServices(report.apps), now));
    for (const [appId, name] of volumes.removed) {
      events.push({ type: 'volume.removed', timestamp: now, data: { app_id: appId, name } });
    }
    for (const [appId, name] of networks.removed) {
      events.push({ type: 'network.removed', timestamp: now, data: { app_id: appId, name } });
    }
  }
  events.push(...reconciliationAfterReport(previous, report, now));
  return events;
}

/** Set differences per app, only for apps whose report carries the field. */
function namedResourceChanges(
  known: Record<string, string[]>,
  apps: NonNullable<StateReport['apps']>,
  field: 'volumes' | 'networks',
) {
  const created: [string, string][] = [];
  const removed: [string, string][] = [];
  for (const appId of Object.keys(apps)) {
    const reported = apps[appId]![field];
    if (reported === undefined) continue;
    const before = new Set(own(known, appId) ?? []);
    const after = new Set(reported);
    for (const name of after) if (!before.has(name)) created.push([appId, name]);
    for (const name of [...before].sort()) if (!after.has(name)) removed.push([appId, name]);
  }
  return { created, removed };
}

function serviceEvents(previous: RegisteredDevice, services: ObservedService[], now: string): DeviceEvent[] {
  const events: DeviceEvent[] = [];
  // the previous report's services are looked at only for a pull error or a finished download
  let previousReport: ReturnType<typeof indexServices> | null = null;
  const beforeOf = (service: ObservedService) => {
    if (service.pull_error === null && service.download_progress !== 100) return undefined;
    previousReport ??= indexServices(reportedServices(previous.current?.apps ?? {}));
    return previousReport.get(service.app_id)?.get(service.service_name);
  };
  const pulled = new Set<string>();
  for (const service of services) {
    const known = own(own(previous.containers, service.app_id) ?? {}, service.service_name);
    events.push(...imageEvents(previous, known, beforeOf(service), service, pulled, now));
    events.push(...containerEvents(known, service, now));
  }
  let reported: ReturnType<typeof indexServices> | null = null;
  for (const appId in previous.containers) {
    if (!Object.hasOwn(previous.containers, appId)) continue;
    const byService = previous.containers[appId]!;
    for (const name in byService) {
      if (!Object.hasOwn(byService, name)) continue;
      const known = byService[name]!;
      if (known.status !== 'running') continue;
      reported ??= indexServices(services);
      if (reported.get(known.app_id)?.has(known.service_name) === true) continue;
      events.push(containerEvent('container.stopped', now, fromKnown(known, 'removed')));
    }
  }
  return events;
}

function imageEvents(
  previous: RegisteredDevice,
  known: ContainerState | undefined,
  before: ObservedService | undefined,
  service: ObservedService,
  pulledInThisReport: Set<string>,
  now: string,
): DeviceEvent[] {
  const events: DeviceEvent[] = [];
  const where = { app_id: service.app_id, service_name: service.service_name };
  // an error the previous report already showed is the same failure, not a new one
  if (service.pull_error !== null && service.pull_error !== before?.pull_error) {
    events.push({
      type: 'image.pull_failed',
      timestamp: now,
      data: { ...where, image: service.image, error: service.pull_error },
    });
  }
  const image = service.image;
  const isNew = image === null || (!Object.hasOwn(previous.images, image) && !pulledInThisReport.has(image));
  const downloaded = service.download_progress === 100 && before?.download_progress !== 100;
  const knownImage = known?.image ?? null;
  const runsNewImage = image !== null && containerPhase(service) === 'running' && knownImage !== null &&
    knownImage !== image;
  if (isNew && (downloaded || runsNewImage)) {
    events.push({ type: 'image.pulled', timestamp: now, data: { ...where, image, previous_image: knownImage } });
    if (image !== null) pulledInThisReport.add(image);
  }
  return events;
}

/**
 * Container transitions of one service against what the lifecycle knows of it:
 * started when it becomes running (a new container id while running is the old one
 * stopped and the new one started); stopped when running → exited 0 or stopped;
 * crashed on a non-zero exit, `crashed`/`dead`, or a restart count that went up
 * (a crash the device recovered from between reports: crashed, then started).
 */
function containerEvents(known: ContainerState | undefined, service: ObservedService, now: string): DeviceEvent[] {
  const phase = containerPhase(service);
  const restartedUnseen = known !== undefined && service.restart_count !== null &&
    service.restart_count > known.restart_count;
  const replaced = known !== undefined && known.container_id !== null && service.container_id !== null &&
    known.container_id !== service.container_id;
  const observed = fromObserved(service);
  switch (phase) {
    case 'crashed':
      if (known === undefined || known.status !== 'crashed' || restartedUnseen || replaced) {
        return [containerEvent('container.crashed', now, observed)];
      }
      return [];
    case 'running':
      if (known === undefined || known.status !== 'running') {
        return [containerEvent('container.started', now, observed)];
      }
      if (replaced) {
        return [
          containerEvent('container.stopped', now, fromKnown(known, 'replaced')),
          containerEvent('container.started', now, observed),
        ];
      }
      if (restartedUnseen) {
        return [
          containerEvent('container.crashed', now, { ...observed, status: 'restarted' }),
          containerEvent('container.started', now, observed),
        ];
      }
      return [];
    case 'stopped':
      return known?.status === 'running' ? [containerEvent('container.stopped', now, observed)] : [];
    case null:
      return [];
    default: {
      const unreachable: never = phase;
      return unreachable;
    }
  }
}

type ContainerData = DeviceEventOf<ContainerEventType>['data'];

function fromObserved(service: ObservedService): ContainerData {
  return {
    app_id: service.app_id,
    service_name: service.service_name,
    container_id: service.container_id,
    image: service.image,
    status: service.status,
    exit_code: service.exit_code,
    restart_count: service.restart_count,
  };
}

function fromKnown(known: ContainerState, status: string): ContainerData {
  return {
    app_id: known.app_id,
    service_name: known.service_name,
    container_id: known.container_id,
    image: known.image,
    status,
    exit_code: null,
    restart_count: known.restart_count,
  };
}

function containerEvent(type: ContainerEventType, timestamp: string, data: ContainerData): DeviceEvent {
  return { type, timestamp, data } as DeviceEvent;
}
