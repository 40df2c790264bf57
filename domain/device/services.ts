// The services a report describes, flattened: an app with `services` has one entry per
// service; an app without (the seed's `{status, containerId}` shape) is one service named
// after the app id, carrying the app's own fields.
import type { ReportedApp } from './events.ts';

/** One service as one report shows it; absent fields are null. */
export type ObservedService = {
  app_id: string;
  service_name: string;
  status: string | null;
  container_id: string | null;
  image: string | null;
  exit_code: number | null;
  restart_count: number | null;
  download_progress: number | null;
  pull_error: string | null;
};

type ServiceFields = {
  status?: string | undefined;
  containerId?: string | undefined;
  image?: string | undefined;
  imageName?: unknown;
  exitCode?: number | undefined;
  restartCount?: number | undefined;
  downloadProgress?: number | undefined;
  imagePullError?: string | undefined;
};

/**
 * A service's image: `image`, else `imageName` (the device agent's name for it, in targets and
 * reports alike; issue #15's drift blindness). Undefined when it names none. Reads the stored
 * shape, so an `imageName` that is not text (only possible in events older than the edge's
 * check) counts as none.
 */
export function imageOf(service: { image?: string | undefined; imageName?: unknown }): string | undefined {
  if (service.image !== undefined) return service.image;
  return typeof service.imageName === 'string' ? service.imageName : undefined;
}

function observe(appId: string, serviceName: string, fields: ServiceFields): ObservedService {
  return {
    app_id: appId,
    service_name: serviceName,
    status: fields.status ?? null,
    container_id: fields.containerId ?? null,
    image: imageOf(fields) ?? null,
    exit_code: fields.exitCode ?? null,
    restart_count: fields.restartCount ?? null,
    download_progress: fields.downloadProgress ?? null,
    pull_error: fields.imagePullError ?? null,
  };
}

/** Every service of the reported apps, in report order (apps, then services). */
export function reportedServices(apps: Record<string, ReportedApp>): ObservedService[] {
  const services: ObservedService[] = [];
  for (const [appId, app] of Object.entries(apps)) {
    if (app.services === undefined) {
      services.push(observe(appId, appId, app));
      continue;
    }
    for (const [name, service] of Object.entries(app.services)) services.push(observe(appId, name, service));
  }
  return services;
}

/** Services by app id, then service name, for lookups. */
export type ServiceIndex = Map<string, Map<string, ObservedService>>;

/** Indexes flattened services by app id and service name. */
export function indexServices(services: readonly ObservedService[]): ServiceIndex {
  const index: ServiceIndex = new Map();
  for (const service of services) {
    let app = index.get(service.app_id);
    if (app === undefined) index.set(service.app_id, app = new Map());
    app.set(service.service_name, service);
  }
  return index;
}

/** What a container is doing, by its reported status; null for transitional statuses (downloading, installing…). */
export function containerPhase(service: ObservedService): 'running' | 'stopped' | 'crashed' | null {
  const status = service.status?.toLowerCase();
  if (status === 'running') return 'running';
  if (status === 'crashed' || status === 'dead') return 'crashed';
  if (status === 'exited' || status === 'stopped') return (service.exit_code ?? 0) === 0 ? 'stopped' : 'crashed';
  return null;
}

/** A place in a target where `imageName` is not usable, with the reason. */
export type TargetImageProblem = { path: (string | number)[]; message: string };

/**
 * Checks the `imageName` of every target service (the device agent's name for `image`; target
 * services keep unknown keys, so nothing else types it): text of 1 to 512 characters, and the
 * same as `image` when both are given — the agent runs `imageName` while drift would compare
 * `image`, so two different names could never converge.
 */
export function targetImageProblems(
  apps: Record<string, { services?: { image?: string | undefined; imageName?: unknown }[] | undefined }>,
): TargetImageProblem[] {
  const problems: TargetImageProblem[] = [];
  for (const [appId, app] of Object.entries(apps)) {
    (app.services ?? []).forEach((service, i) => {
      if (!Object.hasOwn(service, 'imageName')) return;
      const path = ['apps', appId, 'services', i, 'imageName'];
      const name = service.imageName;
      if (typeof name !== 'string' || name.length < 1 || name.length > 512) {
        problems.push({ path, message: 'must be an image reference of 1 to 512 characters' });
      } else if (service.image !== undefined && service.image !== name) {
        problems.push({ path, message: `must equal image ("${service.image}") when both are given` });
      }
    });
  }
  return problems;
}
