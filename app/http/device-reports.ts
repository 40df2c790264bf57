// A state report as the HTTP edge takes it (PATCH /device/state): the fields devicetrail
// knows, strictly typed, in the seed's shape and in the device agent's (issue #15: services
// as a list keyed by `serviceName`, `imageName`, `appId`/`appName`, `agent_version`). Fields
// it does not know are dropped and named (app/http/known-fields.ts); a list of services is
// keyed by name before the report reaches the domain, so the log only ever holds the keyed
// form. The fast path below skips zod for the common shapes (the hot path).
import { z } from 'zod';
import type { ReportState } from '../../domain/device/decide.ts';
import { type ReportedApp, resourceFieldNames, systemFieldNames } from '../../domain/device/events.ts';
import { droppedFields } from './known-fields.ts';
import { metricTablesShape } from './metric-tables.ts';
import { parseOr400 } from './errors.ts';

const serviceNameSchema = z.string().min(1).max(128);

/** The fields a service and an app without services share (the app is then its one service). */
const commonServiceFields = {
  status: z.string().max(64).optional(),
  containerId: z.string().max(128).optional(),
  image: z.string().max(512).optional(),
  /** The device agent's name for `image` (imageOf in domain/device/services.ts). */
  imageName: z.string().max(512).optional(),
  exitCode: z.number().int().optional(),
  restartCount: z.number().int().nonnegative().optional(),
  downloadProgress: z.number().min(0).max(100).optional(),
  imagePullError: z.string().max(2048).optional(),
};
const appIdentity = { appId: z.number().int().optional(), appName: z.string().max(256).optional() };

/**
 * The device agent's service `config`: only `environment` is kept (issue #15, item 3), as
 * markers (app/state-reports.ts hashes every value before anything is stored; README
 * "Secrets"); `image`, `ports`, `networks`… are dropped and named. A `config` left empty is
 * removed (keyServices), so reports without an environment store what they stored before.
 */
const serviceConfigInput = z.object({
  environment: z.record(
    z.string().min(1).max(256),
    z.union([z.string().max(65_536), z.number(), z.boolean(), z.null()]),
  ).refine((env) => Object.keys(env).length <= 500, 'at most 500 variables').optional(),
});

/** A reported service: the fields devicetrail knows (others are dropped and named). */
export const reportedServiceInput = z.object({
  ...commonServiceFields,
  ...appIdentity,
  serviceId: z.number().int().optional(),
  serviceName: serviceNameSchema.optional(),
  config: serviceConfigInput.optional(),
});

/** Services keyed by name; a `serviceName` inside must be the key. */
const serviceRecord = z.record(serviceNameSchema, reportedServiceInput).superRefine((services, ctx) => {
  for (const [name, service] of Object.entries(services)) {
    if (service.serviceName !== undefined && service.serviceName !== name) {
      ctx.addIssue({ code: 'custom', path: [name, 'serviceName'], message: `must be the service's key ("${name}")` });
    }
  }
});

/** Services as the device agent sends them: a list, each named by `serviceName`, once. */
const serviceList = z.array(reportedServiceInput.extend({ serviceName: serviceNameSchema })).superRefine(
  (services, ctx) => {
    const seen = new Map<string, number>();
    services.forEach((service, i) => {
      const first = seen.get(service.serviceName);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'serviceName'],
          message: `"${service.serviceName}" is also service ${first}: a service may be listed once`,
        });
      } else seen.set(service.serviceName, i);
    });
  },
);

/** A reported app: the seed's `{status, containerId}` and richer forms, and the agent's. */
export const reportedAppInput = z.object({
  ...commonServiceFields,
  ...appIdentity,
  releaseId: z.union([z.number().int(), z.string().max(128)]).optional(),
  commit: z.string().max(128).optional(),
  services: z.union([serviceRecord, serviceList]).optional(),
  volumes: z.array(z.string().max(256)).max(100).optional(),
  networks: z.array(z.string().max(256)).max(100).optional(),
});

const systemShape = Object.fromEntries(
  systemFieldNames.map((
    name,
  ) => [
    name,
    name === 'uptime' ? z.number().nonnegative().nullable().optional() : z.string().max(256).nullable().optional(),
  ]),
);
const resourceShape = Object.fromEntries(
  resourceFieldNames.map((name) => [name, z.number().finite().nullable().optional()]),
);

/**
 * One device's entry in a state report (snake_case, as in the seed). Unknown fields, at any
 * depth, are stripped (zod's default) and named by the route.
 */
export const reportBody = z.object({
  apps: z.record(z.string().min(1).max(64), reportedAppInput).refine(
    (a) => Object.keys(a).length <= 100,
    'at most 100 apps',
  ).optional(),
  config: z.record(z.string().min(1).max(128), z.unknown()).optional(),
  update_status: z.string().min(1).max(64).optional(),
  ...systemShape,
  ...resourceShape,
  // telemetry only (issue #15): kept in the metrics series, never in events
  ...metricTablesShape,
});

/** A report as reportBody returns it (services as a record or a list). */
export type ReportInput = z.infer<typeof reportBody>;

/** A report ready for the domain: services keyed by name. */
export type CanonicalReport = Omit<ReportInput, 'apps'> & { apps?: Record<string, ReportedApp> | undefined };

const systemFields: ReadonlySet<string> = new Set(systemFieldNames);
const resourceFields: ReadonlySet<string> = new Set(resourceFieldNames);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max: number, min = 0): boolean =>
  typeof v === 'string' && v.length >= min && v.length <= max;
const isInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v);
/** A record key the schema keeps: zod's records drop `__proto__`, so such reports go to the schema. */
const isKey = (k: string, max: number): boolean => k.length >= 1 && k.length <= max && k !== '__proto__';

/** The fields commonServiceFields checks; undefined for any other key. */
function commonFieldOk(key: string, v: unknown): boolean | undefined {
  switch (key) {
    case 'status':
      return isText(v, 64);
    case 'containerId':
      return isText(v, 128);
    case 'image':
    case 'imageName':
      return isText(v, 512);
    case 'exitCode':
      return isInt(v);
    case 'restartCount':
      return isInt(v) && (v as number) >= 0;
    case 'downloadProgress':
      return typeof v === 'number' && v >= 0 && v <= 100;
    case 'imagePullError':
      return isText(v, 2048);
    case 'appId':
      return isInt(v);
    case 'appName':
      return isText(v, 256);
    default:
      return undefined;
  }
}

function simpleService(service: unknown, name: string): boolean {
  if (!isPlainObject(service)) return false;
  for (const key in service) {
    const v = service[key];
    const ok = commonFieldOk(key, v) ??
      (key === 'serviceId' ? isInt(v) : key === 'serviceName' ? v === name : false);
    if (!ok) return false;
  }
  return true;
}

function simpleApp(app: unknown): boolean {
  if (!isPlainObject(app)) return false;
  for (const key in app) {
    const v = app[key];
    const ok = commonFieldOk(key, v) ??
      (key === 'releaseId'
        ? isInt(v) || isText(v, 128)
        : key === 'commit'
        ? isText(v, 128)
        : key === 'services'
        ? simpleServices(v)
        : false);
    if (!ok) return false;
  }
  return true;
}

function simpleServices(services: unknown): boolean {
  if (!isPlainObject(services)) return false;
  for (const name in services) if (!isKey(name, 128) || !simpleService(services[name], name)) return false;
  return true;
}

/**
 * True only for a report reportBody certainly accepts unchanged, in its common shapes (apps
 * with services keyed by name, system and resource fields, update_status); anything else
 * (config, volumes, networks, lists of services, unknown fields, infinities…) is left to the
 * schema, which also names the problem. Skips zod on the hot path; the schema stays the
 * definition (test/http/report-fast-path.test.ts).
 */
export function plainValidReport(value: unknown): value is ReportInput {
  if (!isPlainObject(value)) return false;
  for (const key in value) {
    const v = value[key];
    if (resourceFields.has(key)) {
      if (v !== null && !(typeof v === 'number' && Number.isFinite(v))) return false;
    } else if (systemFields.has(key)) {
      if (v !== null && !(key === 'uptime' ? typeof v === 'number' && Number.isFinite(v) && v >= 0 : isText(v, 256))) {
        return false;
      }
    } else if (key === 'update_status') {
      if (!isText(v, 64, 1)) return false;
    } else if (key === 'apps') {
      if (!isPlainObject(v)) return false;
      let apps = 0;
      for (const appId in v) {
        apps += 1;
        if (apps > 100 || !isKey(appId, 64) || !simpleApp(v[appId])) return false;
      }
    } else return false;
  }
  return true;
}

/** A service without its `config` when nothing of it was kept (no `environment`). */
function withoutEmptyConfig(service: Record<string, unknown>): Record<string, unknown> {
  const config = service['config'] as { environment?: unknown } | undefined;
  if (config === undefined || config.environment !== undefined) return service;
  const { config: _dropped, ...rest } = service;
  return rest;
}

/**
 * Services listed (the agent's form) keyed by `serviceName`, in list order, and service
 * `config`s that kept nothing removed; the rest as it is.
 */
export function keyServices(report: ReportInput): CanonicalReport {
  if (report.apps === undefined) return report as CanonicalReport;
  let apps: Record<string, unknown> | null = null;
  for (const [appId, app] of Object.entries(report.apps)) {
    if (app.services === undefined) continue;
    const listed = Array.isArray(app.services);
    const entries: [string, Record<string, unknown>][] = listed
      ? (app.services as { serviceName: string }[]).map((s): [string, Record<string, unknown>] => [s.serviceName, s])
      : Object.entries(app.services as Record<string, Record<string, unknown>>);
    if (!listed && !entries.some(([, s]) => s['config'] !== undefined)) continue;
    apps ??= { ...report.apps };
    const services: Record<string, unknown> = {};
    for (const [name, service] of entries) services[name] = withoutEmptyConfig(service);
    apps[appId] = { ...app, services };
  }
  return apps === null ? report as CanonicalReport : { ...report, apps } as CanonicalReport;
}

/**
 * A report entry, validated and ready for the domain, with the fields it dropped. On the fast
 * path the report is the JSON value itself, which equals what the schema would return: its
 * objects keep the parser's compact shape instead of being rebuilt. Otherwise, the schema's
 * output with services keyed by name.
 */
export function parseReport(value: unknown, root: string): { report: CanonicalReport; ignored: string[] } {
  if (plainValidReport(value)) return { report: value as CanonicalReport, ignored: [] };
  const parsed = parseOr400(reportBody, value, root);
  return { report: keyServices(parsed), ignored: droppedFields(value, parsed, root) };
}

/** Sorts a validated report into the buckets the domain folds. */
export function toReportCommand(report: CanonicalReport, now: string): ReportState {
  const values = report as Record<string, unknown>;
  const system: ReportState['system'] = {};
  const resources: ReportState['resources'] = {};
  for (const name of systemFieldNames) {
    if (values[name] !== undefined) system[name] = values[name] as string | number | null;
  }
  for (const name of resourceFieldNames) {
    if (values[name] !== undefined) resources[name] = values[name] as number | null;
  }
  return {
    type: 'report_state',
    now,
    apps: report.apps,
    system,
    resources,
    config: report.config,
    update_status: report.update_status,
  };
}
