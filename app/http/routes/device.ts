// Endpoints devices call: register (provisioning key), poll target state, report current
// state and send lifecycle events they observed (device key). Every authenticated device
// call counts as a contact for connectivity.
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { decide, type ReportState } from '../../../domain/device/decide.ts';
import {
  isDeviceEventType,
  reportedAppSchema,
  resourceFieldNames,
  systemFieldNames,
} from '../../../domain/device/events.ts';
import {
  deviceReportableTypes,
  deviceReportedDataSchemas,
  type DeviceReportedEvent,
  isDeviceReportableType,
} from '../../../domain/device/reported-events.ts';
import { DomainError } from '../../../domain/errors.ts';
import { assertKeyUsable } from '../../../domain/provisioning-key/decider.ts';
import { handleCommand } from '../../../infra/event-store/command-handler.ts';
import {
  ADMIN_TOKEN_PREFIX,
  hashSecret,
  insertDeviceKey,
  PROVISIONING_KEY_PREFIX,
  sameHash,
} from '../../../infra/devices/credentials.ts';
import { recordDeviceContact, touchContact } from '../../../infra/devices/contact.ts';
import { createDeviceBatchWriter } from '../../../infra/devices/batch-writer.ts';
import { deviceAdapter } from '../../../infra/devices/device-store.ts';
import { claimKeySlot } from '../../../infra/devices/provisioning-key-store.ts';
import { actorOf, callerOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { instantSchema, jsonBody, requestMetadata, uuidParam, uuidSchema } from '../request.ts';
import { deviceView } from '../views.ts';

const optionalText = (max: number) => z.string().min(1).max(max).optional();

/** The seed's registration body (camelCase). */
export const registerBody = z.object({
  uuid: uuidSchema,
  deviceName: z.string().min(1).max(128),
  deviceType: z.string().min(1).max(64),
  deviceApiKey: z.string().min(8).max(256).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces')
    .refine(
      (k) => !k.startsWith(ADMIN_TOKEN_PREFIX) && !k.startsWith(PROVISIONING_KEY_PREFIX),
      `must not start with ${ADMIN_TOKEN_PREFIX} or ${PROVISIONING_KEY_PREFIX}`,
    ),
  macAddress: z.string().regex(
    /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/,
    'must be a MAC address like b8:27:eb:12:34:56',
  ).optional(),
  ipAddress: optionalText(64),
  osVersion: optionalText(128),
  supervisorVersion: optionalText(64),
}).strict();

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

/** One device's entry in a state report (snake_case, as in the seed). */
export const reportBody = z.object({
  apps: z.record(z.string().min(1).max(64), reportedAppSchema).refine(
    (a) => Object.keys(a).length <= 100,
    'at most 100 apps',
  ).optional(),
  config: z.record(z.string().min(1).max(128), z.unknown()).optional(),
  update_status: z.string().min(1).max(64).optional(),
  ...systemShape,
  ...resourceShape,
}).strict();

const systemFields: ReadonlySet<string> = new Set(systemFieldNames);
const resourceFields: ReadonlySet<string> = new Set(resourceFieldNames);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max: number, min = 0): boolean =>
  typeof v === 'string' && v.length >= min && v.length <= max;
const isInt = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v);
/** A record key the schema keeps: zod's records drop `__proto__`, so such reports go to the schema. */
const isKey = (k: string, max: number): boolean => k.length >= 1 && k.length <= max && k !== '__proto__';

/** The service fields reportedServiceSchema checks (an app without `services` carries them too). */
function serviceFieldOk(key: string, v: unknown): boolean | undefined {
  switch (key) {
    case 'status':
      return isText(v, 64);
    case 'containerId':
      return isText(v, 128);
    case 'image':
      return isText(v, 512);
    case 'exitCode':
      return isInt(v);
    case 'restartCount':
      return isInt(v) && (v as number) >= 0;
    case 'downloadProgress':
      return typeof v === 'number' && v >= 0 && v <= 100;
    case 'imagePullError':
      return isText(v, 2048);
    default:
      return undefined;
  }
}

function simpleService(service: unknown): boolean {
  if (!isPlainObject(service)) return false;
  for (const key in service) if (serviceFieldOk(key, service[key]) !== true) return false;
  return true;
}

function simpleApp(app: unknown): boolean {
  if (!isPlainObject(app)) return false;
  for (const key in app) {
    const v = app[key];
    const ok = serviceFieldOk(key, v) ??
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
  for (const name in services) if (!isKey(name, 128) || !simpleService(services[name])) return false;
  return true;
}

/**
 * True only for a report reportBody certainly accepts, in its common shapes (apps with
 * services, system and resource fields, update_status); anything else (config, volumes,
 * networks, fields of other apps, infinities…) is left to the schema, which also names
 * the problem. Skips zod on the hot path; the schema stays the definition.
 */
export function plainValidReport(value: unknown): value is z.infer<typeof reportBody> {
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

/**
 * A report entry, validated. On the fast path the result is the JSON value itself, which
 * equals what the schema would return (test/http/report-fast-path.test.ts): its objects keep
 * the parser's compact shape instead of being rebuilt. Otherwise, the schema's output.
 */
export function parseReport(value: unknown, root: string): z.infer<typeof reportBody> {
  if (plainValidReport(value)) return value;
  return parseOr400(reportBody, value, root);
}

/** Sorts a validated report into the buckets the domain folds. */
export function toReportCommand(report: z.infer<typeof reportBody>, now: string): ReportState {
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

/** Most lifecycle events one POST /device/events may carry. */
export const MAX_DEVICE_EVENTS = 100;

/** The body of POST /device/events; each event's data is checked against its type afterwards. */
export const deviceEventsBody = z.object({
  events: z.array(
    z.object({
      type: z.string().min(1).max(64),
      data: z.unknown(),
      observed_at: instantSchema.optional(),
    }).strict(),
  ).min(1, 'must hold at least one event').max(MAX_DEVICE_EVENTS, `at most ${MAX_DEVICE_EVENTS} events per request`),
}).strict();

/** Validates each event against the catalogue: known type, one a device may send, its data schema. */
export function parseDeviceEvents(
  body: z.infer<typeof deviceEventsBody>,
): (DeviceReportedEvent & { observed_at?: string | undefined })[] {
  return body.events.map((event, i) => {
    const field = `body.events.${i}`;
    if (!isDeviceEventType(event.type)) {
      throw new HttpError(
        400,
        'invalid_request',
        `${field}.type: unknown event type "${event.type}"; a device may send ${deviceReportableTypes.join(', ')}`,
      );
    }
    if (!isDeviceReportableType(event.type)) {
      throw new HttpError(
        400,
        'invalid_request',
        `${field}.type: "${event.type}" is recorded by the server, not sent by devices; a device may send ${
          deviceReportableTypes.join(', ')
        }`,
      );
    }
    const schema: z.ZodType<unknown, z.ZodTypeDef, unknown> = deviceReportedDataSchemas[event.type];
    const data = parseOr400(schema, event.data, `${field}.data`);
    return { type: event.type, data, observed_at: event.observed_at } as DeviceReportedEvent & {
      observed_at?: string | undefined;
    };
  });
}

/** A disabled device's refused call still shows it is alive: record the contact, then refuse. */
async function refusedIfInactive<T>(deps: AppDeps, uuid: string, now: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof DomainError && error.code === 'device_inactive') await touchContact(deps.pool, uuid, now);
    throw error;
  }
}

/** Registers POST /device/register on the provisioning-key router (its guard authenticates). */
export function registrationRoutes(router: Router, deps: AppDeps): void {
  router.post('/device/register', async (ctx: Context) => {
    const key = callerOf(ctx, 'provisioning_key');
    const now = deps.clock().toISOString();
    assertKeyUsable(key.state, now);
    const body = parseOr400(registerBody, jsonBody(ctx));
    const keyHash = hashSecret(body.deviceApiKey);
    const existing = async () => {
      const stored = await deps.deviceKeys.hashOf(deps.pool, body.uuid);
      if (stored === null) return false;
      if (!sameHash(stored, keyHash)) {
        throw new HttpError(
          409,
          'device_exists',
          `a device with uuid ${body.uuid} is already registered with another key`,
        );
      }
      const row = await deps.devices.get(body.uuid);
      ctx.status = 200;
      ctx.body = { device: row === null ? { uuid: body.uuid } : deviceView(row), created: false };
      return true;
    };
    if (await existing()) return;
    if (key.state.status === 'none') throw new HttpError(403, 'forbidden', 'provisioning key is not usable');
    const fleetId = key.state.fleet_id;
    try {
      await handleCommand(
        deps.pool,
        deps.store,
        deviceAdapter,
        body.uuid,
        (state) =>
          decide({
            type: 'register_device',
            now,
            device_name: body.deviceName,
            device_type: body.deviceType,
            fleet_id: fleetId,
            mac_address: body.macAddress?.toLowerCase() ?? null,
            ip_address: body.ipAddress ?? null,
            os_version: body.osVersion ?? null,
            supervisor_version: body.supervisorVersion ?? null,
            provisioning_key_id: key.id,
          }, state),
        { metadata: requestMetadata(ctx, actorOf(key), { provisioning_key_id: key.id }), source: 'api' },
        async (tx) => {
          if (!(await insertDeviceKey(tx, body.uuid, keyHash))) {
            throw new HttpError(
              409,
              'device_key_in_use',
              'deviceApiKey is already used by another device; choose another',
            );
          }
          if (!(await claimKeySlot(tx, key.id))) {
            throw new HttpError(403, 'provisioning_key_used_up', 'provisioning key has reached its max_devices');
          }
        },
      );
    } catch (error) {
      // a concurrent registration of the same uuid won: same key → 200, else 409
      if (error instanceof DomainError && error.code === 'device_already_registered' && (await existing())) return;
      throw error;
    }
    const row = await deps.devices.get(body.uuid);
    ctx.status = 201;
    ctx.body = { device: deviceView(row!), created: true };
  });
}

/** Registers the endpoints a device calls with its key on the device router (its guard authenticates). */
export function deviceRoutes(router: Router, deps: AppDeps): void {
  // state reports are the hot path: written in groups, one commit for many devices
  const reportWriter = createDeviceBatchWriter(deps.pool, deps.store);
  router.get('/device/:uuid/target-state', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    const uuid = uuidParam(ctx);
    if (uuid !== device.uuid) throw new HttpError(403, 'forbidden', 'a device may only read its own target state');
    const row = await deps.devices.get(uuid);
    if (row === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
    // the poll is the device's heartbeat, also while it is disabled
    await recordDeviceContact(
      deps.pool,
      deps.store,
      uuid,
      deps.clock().toISOString(),
      requestMetadata(ctx, actorOf(device)),
    );
    if (!row.is_active) throw new HttpError(403, 'device_inactive', 'device is disabled');
    const target = row.state.status === 'registered' ? row.state.target : null;
    const version = target?.version ?? 0;
    ctx.set('ETag', `"${version}"`);
    ctx.set('Cache-Control', 'no-cache');
    const inm = ctx.get('If-None-Match');
    if (
      inm !== '' &&
      inm.split(',').map((t) => t.trim().replace(/^W\//, '')).some((t) => t === `"${version}"` || t === '*')
    ) {
      ctx.status = 304;
      return;
    }
    ctx.body = {
      uuid,
      version,
      apps: target?.apps ?? {},
      config: target?.config ?? {},
      updated_at: target?.updated_at ?? null,
    };
  });

  router.patch('/device/state', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    const raw = jsonBody(ctx);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new HttpError(400, 'invalid_request', 'body: must be an object keyed by device uuid');
    }
    const entries = Object.entries(raw as Record<string, unknown>);
    if (entries.length === 0) {
      throw new HttpError(400, 'invalid_request', "body: must contain the reporting device's uuid as a key");
    }
    const reports: [string, z.infer<typeof reportBody>][] = [];
    for (const [key, value] of entries) {
      const uuid = uuidSchema.safeParse(key);
      if (!uuid.success) throw new HttpError(400, 'invalid_request', `body.${key}: key must be a device uuid`);
      if (uuid.data !== device.uuid) {
        throw new HttpError(403, 'forbidden', `body.${key}: a device may only report its own state`);
      }
      reports.push([uuid.data, parseReport(value, `body.${key}`)]);
    }
    const now = deps.clock().toISOString();
    const result: Record<string, { version: number; in_sync: boolean; events_written: number }> = {};
    let written = 0;
    for (const [uuid, report] of reports) {
      const metadata = requestMetadata(ctx, actorOf(device));
      const outcome = await refusedIfInactive(
        deps,
        uuid,
        now,
        () =>
          reportWriter.submit(uuid, (state) => decide(toReportCommand(report, now), state), {
            metadata,
            source: 'api',
          }),
      );
      // an unchanged report appends nothing but is still a contact (and restores a device a sweeper just marked lost)
      const contact = outcome.events.length === 0
        ? await recordDeviceContact(deps.pool, deps.store, uuid, now, metadata)
        : null;
      const events = outcome.events.length + (contact?.events.length ?? 0);
      written += events;
      const state = contact?.state ?? outcome.state;
      result[uuid] = {
        version: state.version,
        in_sync: state.status === 'registered' ? state.drift.in_sync : false,
        events_written: events,
      };
    }
    ctx.body = { events_written: written, devices: result };
  });

  router.post('/device/events', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    const events = parseDeviceEvents(parseOr400(deviceEventsBody, jsonBody(ctx)));
    const now = deps.clock().toISOString();
    const metadata = requestMetadata(ctx, actorOf(device));
    const outcome = await refusedIfInactive(deps, device.uuid, now, async () => {
      await recordDeviceContact(deps.pool, deps.store, device.uuid, now, metadata);
      return handleCommand(
        deps.pool,
        deps.store,
        deviceAdapter,
        device.uuid,
        (state) => decide({ type: 'record_device_events', now, events }, state),
        { metadata, source: 'device' },
      );
    });
    ctx.status = 201;
    ctx.body = {
      uuid: device.uuid,
      version: outcome.state.version,
      events_written: outcome.events.length,
      event_ids: outcome.events.map((e) => e.event_id),
    };
  });
}
