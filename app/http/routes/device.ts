// Endpoints devices call: register (provisioning key), key exchange, poll the target state
// (devicetrail's shape and the device agent's), report current state and send lifecycle
// events they observed (device key). Every authenticated device call counts as a contact for
// connectivity. Bodies ignore fields devicetrail does not know and name them in the answer
// (app/http/known-fields.ts); gzip-encoded bodies are inflated by the body parser, within the
// same size limit (README "Device agents").
import { createHash } from 'node:crypto';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { decide } from '../../../domain/device/decide.ts';
import { isDeviceEventType } from '../../../domain/device/events.ts';
import {
  deviceReportableTypes,
  deviceReportedDataSchemas,
  type DeviceReportedEvent,
  isDeviceReportableType,
} from '../../../domain/device/reported-events.ts';
import { revealTargetSecrets, targetSecretMarkers } from '../../../domain/device/secrets.ts';
import { DomainError } from '../../../domain/errors.ts';
import { assertKeyUsable } from '../../../domain/provisioning-key/decider.ts';
import { handleCommand } from '../../../infra/event-store/command-handler.ts';
import { ADMIN_TOKEN_PREFIX, PROVISIONING_KEY_PREFIX } from '../../../infra/devices/credentials.ts';
import { recordDeviceContact, touchContact } from '../../../infra/devices/contact.ts';
import { deviceAdapter } from '../../../infra/devices/device-store.ts';
import { claimKeySlot } from '../../../infra/devices/provisioning-key-store.ts';
import { readSecretValues } from '../../../infra/secrets/secret-values.ts';
import { actorOf, callerOf, countFailedGuess } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import type { DeviceRow } from '../../../infra/devices/device-queries.ts';
import { parseStateReports, stateReportsFor } from '../../state-reports.ts';
import { HttpError } from '../errors.ts';
import { noteIgnored, parseKnown, withIgnored } from '../known-fields.ts';
import { instantSchema, jsonBody, requestMetadata, uuidParam, uuidSchema } from '../request.ts';
import { deviceView } from '../views.ts';

const optionalText = (max: number) => z.string().min(1).max(max).optional();

/** The seed's registration body (camelCase), with the device agent's `applicationId` and `agentVersion`. */
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
  // the agent sends parseInt(APPLICATION_ID), which is null in JSON when that is not a number
  applicationId: z.union([z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), z.string().min(1).max(128)])
    .nullable().optional(),
  agentVersion: optionalText(64),
});

/** POST /device/:uuid/key-exchange (the device agent's second provisioning step). */
export const keyExchangeBody = z.object({
  uuid: uuidSchema,
  deviceApiKey: z.string().min(1).max(256),
  /** true: answer with a new MQTT password (the previous one stops working); issue #18. */
  reissueMqtt: z.boolean().optional(),
});

/** Most lifecycle events one POST /device/events may carry. */
export const MAX_DEVICE_EVENTS = 100;

/** The body of POST /device/events; each event's data is checked against its type afterwards. */
export const deviceEventsBody = z.object({
  events: z.array(
    z.object({
      type: z.string().min(1).max(64),
      data: z.unknown(),
      observed_at: instantSchema.optional(),
    }),
  ).min(1, 'must hold at least one event').max(MAX_DEVICE_EVENTS, `at most ${MAX_DEVICE_EVENTS} events per request`),
});

/**
 * Validates each event against the catalogue: known type, one a device may send, its data
 * schema (fields of the data it does not know are dropped and go to `ignored`).
 */
export function parseDeviceEvents(
  body: z.infer<typeof deviceEventsBody>,
  ignored: string[] = [],
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
    const parsed = parseKnown(schema, event.data, `${field}.data`);
    ignored.push(...parsed.ignored);
    const data = parsed.data;
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

/** MQTT credentials as the device agent reads them: nulls when there are none. */
type MqttAnswer = { username: string | null; password: string | null; broker: string | null };

const NO_MQTT: MqttAnswer = { username: null, password: null, broker: null };

/**
 * A new MQTT credential for the device (issue #18), named for the host the device reached
 * the API by; nulls when MQTT is off or the broker did not take it (logged: the device stays
 * on HTTP and can ask the key exchange for one later).
 */
async function mqttAnswer(deps: AppDeps, ctx: Context, uuid: string): Promise<MqttAnswer> {
  if (deps.mqtt === undefined) return NO_MQTT;
  try {
    return (await deps.mqtt.issueCredentials(uuid, ctx.hostname)) ?? NO_MQTT;
  } catch (error) {
    deps.logError(`mqtt: no credential issued for ${uuid}`, error);
    return NO_MQTT;
  }
}

/**
 * The answer to a registration: devicetrail's `{device, created}`, and at the top level what
 * the device agent reads (`id`, `uuid`, `deviceName`, `deviceType`, `createdAt`, `mqtt`). The
 * device's id is its uuid; `mqtt` holds its MQTT credential, a new one on each registration
 * (nulls when MQTT is off).
 */
function registrationAnswer(row: DeviceRow | null, uuid: string, created: boolean, mqtt: MqttAnswer) {
  const state = row?.state.status === 'registered' ? row.state : null;
  return {
    device: row === null ? { uuid } : deviceView(row),
    created,
    id: uuid,
    uuid,
    deviceName: row?.device_name ?? null,
    deviceType: row?.device_type ?? null,
    applicationId: state?.application_id ?? null,
    createdAt: row?.registered_at ?? null,
    mqtt,
  };
}

/**
 * The one answer to a registration that clashes with another device: its uuid is taken under
 * another key, or its key by another uuid. The same body whichever it is and whoever owns the
 * other device, so a provisioning key cannot learn which uuids or keys exist in other fleets
 * (issue #16, finding 8); the attempt counts as a failed authentication of the key tried.
 */
function registrationConflict(ctx: Context, deps: AppDeps, deviceApiKey: string): HttpError {
  countFailedGuess(ctx, deps, deviceApiKey);
  return new HttpError(
    409,
    'registration_conflict',
    'this uuid or this deviceApiKey already belongs to another registration; choose a new uuid and a new key',
  );
}

/** Registers POST /device/register on the provisioning-key router (its guard authenticates). */
export function registrationRoutes(router: Router, deps: AppDeps): void {
  router.post('/device/register', async (ctx: Context) => {
    const key = callerOf(ctx, 'provisioning_key');
    const now = deps.clock().toISOString();
    assertKeyUsable(key.state, now);
    const { data: body, ignored } = parseKnown(registerBody, jsonBody(ctx));
    noteIgnored(ctx, ignored);
    const existing = async () => {
      const ownKey = await deps.deviceKeys.isKeyOf(deps.pool, body.uuid, body.deviceApiKey);
      if (ownKey === null) return false;
      if (!ownKey) throw registrationConflict(ctx, deps, body.deviceApiKey);
      ctx.status = 200;
      const row = await deps.devices.get(body.uuid);
      ctx.body = withIgnored(ctx, registrationAnswer(row, body.uuid, false, await mqttAnswer(deps, ctx, body.uuid)));
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
            application_id: body.applicationId ?? null,
            agent_version: body.agentVersion ?? null,
          }, state),
        { metadata: requestMetadata(ctx, actorOf(key), { provisioning_key_id: key.id }), source: 'api' },
        async (tx) => {
          if (!(await deps.deviceKeys.insert(tx, body.uuid, body.deviceApiKey))) {
            throw registrationConflict(ctx, deps, body.deviceApiKey);
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
    ctx.status = 201;
    const row = await deps.devices.get(body.uuid);
    ctx.body = withIgnored(ctx, registrationAnswer(row, body.uuid, true, await mqttAnswer(deps, ctx, body.uuid)));
  });
}

/**
 * The calling device's row, after recording the call as its contact (a lost device is
 * restored; a disabled one still counts as seen, then is refused with 403).
 */
async function contactedDevice(deps: AppDeps, ctx: Context, uuid: string, device: Parameters<typeof actorOf>[0]) {
  const row = await deps.devices.get(uuid);
  if (row === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
  await recordDeviceContact(
    deps.pool,
    deps.store,
    uuid,
    deps.clock().toISOString(),
    requestMetadata(ctx, actorOf(device)),
  );
  if (!row.is_active) throw new HttpError(403, 'device_inactive', 'device is disabled');
  return row;
}

/** The target a poll answers with: its version (0 before any), apps, config and when it was set. */
type PolledTarget = { uuid: string; version: number; apps: object; config: object; updated_at: string | null };

/**
 * The target as the device must receive it: the stored target holds markers (README
 * "Secrets"), each replaced by its kept value; an erased value's variable or config key is left
 * out. The ETag is the target version, with a fingerprint of the erased markers after it when
 * any is (`"3.e1a2b3c4"`), so erasing a value of the current target changes the ETag too.
 */
async function targetForDevice(
  deps: AppDeps,
  target: { version: number; apps: object; config: object } | null,
): Promise<{ etag: string; apps: object; config: object }> {
  const version = target?.version ?? 0;
  if (target === null) return { etag: `"${version}"`, apps: {}, config: {} };
  const markers = targetSecretMarkers(target);
  if (markers.length === 0) return { etag: `"${version}"`, apps: target.apps, config: target.config };
  const values = await readSecretValues(deps.pool, markers);
  const erased = markers.filter((marker) => values.get(marker)?.erased_at !== null).sort();
  const revealed = revealTargetSecrets(target, (marker) => {
    const kept = values.get(marker);
    return kept === undefined || kept.erased_at !== null ? undefined : kept.value;
  });
  const etag = erased.length === 0
    ? `"${version}"`
    : `"${version}.e${createHash('sha256').update(erased.join('\n')).digest('hex').slice(0, 8)}"`;
  return { etag, apps: revealed.apps, config: revealed.config };
}

/**
 * A device polling its target, in devicetrail's shape or the agent's: its own uuid only (403
 * otherwise), a heartbeat also while disabled (then 403), `ETag` = the target version (and
 * erased secrets, targetForDevice) and `If-None-Match` with it → 304.
 */
function targetPoll(deps: AppDeps, shape: (target: PolledTarget) => object) {
  return async function pollTarget(ctx: Context): Promise<void> {
    const device = callerOf(ctx, 'device');
    const uuid = uuidParam(ctx);
    if (uuid !== device.uuid) throw new HttpError(403, 'forbidden', 'a device may only read its own target state');
    // the poll is the device's heartbeat, also while it is disabled
    const row = await contactedDevice(deps, ctx, uuid, device);
    const target = row.state.status === 'registered' ? row.state.target : null;
    const version = target?.version ?? 0;
    const served = await targetForDevice(deps, target);
    ctx.set('ETag', served.etag);
    ctx.set('Cache-Control', 'no-cache');
    const inm = ctx.get('If-None-Match');
    if (
      inm !== '' &&
      inm.split(',').map((t) => t.trim().replace(/^W\//, '')).some((t) => t === served.etag || t === '*')
    ) {
      ctx.status = 304;
      return;
    }
    ctx.body = shape({
      uuid,
      version,
      apps: served.apps,
      config: served.config,
      updated_at: target?.updated_at ?? null,
    });
    // the first 200 carrying a version is its delivery over HTTP
    await deps.deliveries.note(uuid, version, 'http');
  };
}

/** Registers the endpoints a device calls with its key on the device router (its guard authenticates). */
export function deviceRoutes(router: Router, deps: AppDeps): void {
  // state reports are the hot path: written in groups, one commit for many devices
  const reportWriter = stateReportsFor(deps.pool, deps.store, deps.secrets);

  // the device agent's second provisioning step: it proves it holds the key it registered
  // with (Authorization: Bearer <deviceApiKey>, the same key in the body); nothing to store
  router.post('/device/:uuid/key-exchange', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    const uuid = uuidParam(ctx);
    const { data: body, ignored } = parseKnown(keyExchangeBody, jsonBody(ctx));
    noteIgnored(ctx, ignored);
    if (uuid !== device.uuid || body.uuid !== device.uuid) {
      throw new HttpError(403, 'forbidden', 'a device may only exchange its own key (path, body.uuid and credential)');
    }
    if ((await deps.deviceKeys.isKeyOf(deps.pool, uuid, body.deviceApiKey)) !== true) {
      throw new HttpError(403, 'forbidden', 'body.deviceApiKey: is not the key this device authenticated with');
    }
    const row = await contactedDevice(deps, ctx, uuid, device);
    ctx.body = withIgnored(ctx, {
      status: 'ok',
      message: 'the device key is valid',
      device: { id: uuid, uuid, deviceName: row.device_name },
      // asked for: a new MQTT password (the device agent never asks, so the one its
      // registration gave it stays valid)
      ...(body.reissueMqtt === true ? { mqtt: await mqttAnswer(deps, ctx, uuid) } : {}),
    });
  });

  router.get('/device/:uuid/target-state', targetPoll(deps, (target) => target));

  // the device agent's poll: `{"<uuid>": {apps, config, version}}`
  router.get(
    '/device/:uuid/state',
    targetPoll(deps, (target) => ({
      [target.uuid]: { apps: target.apps, config: target.config, version: target.version },
    })),
  );

  router.patch('/device/state', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    // the same path as MQTT reports (app/state-reports.ts)
    const { reports, ignored } = parseStateReports(jsonBody(ctx), device.uuid);
    noteIgnored(ctx, ignored);
    const metadata = requestMetadata(ctx, actorOf(device));
    const now = deps.clock().toISOString();
    ctx.body = withIgnored(ctx, await reportWriter.submit(reports, { now, metadata, source: 'api' }));
  });

  router.post('/device/events', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    const { data: body, ignored } = parseKnown(deviceEventsBody, jsonBody(ctx));
    const events = parseDeviceEvents(body, ignored);
    noteIgnored(ctx, ignored);
    const now = deps.clock().toISOString();
    const metadata = requestMetadata(ctx, actorOf(device));
    const { contact, outcome } = await refusedIfInactive(deps, device.uuid, now, async () => {
      const contact = await recordDeviceContact(deps.pool, deps.store, device.uuid, now, metadata);
      const outcome = await handleCommand(
        deps.pool,
        deps.store,
        deviceAdapter,
        device.uuid,
        (state) => decide({ type: 'record_device_events', now, events }, state),
        { metadata, source: 'device' },
      );
      return { contact, outcome };
    });
    ctx.status = 201;
    ctx.body = withIgnored(ctx, {
      uuid: device.uuid,
      version: outcome.state.version,
      // the device's own events, in the order sent: event_ids[i] is the i-th
      events_written: outcome.events.length,
      event_ids: outcome.events.map((e) => e.event_id),
      // a lost device's call restores it first (device.connection_restored, before its events)
      restored_event_id: contact?.events[0]?.event_id ?? null,
    });
  });
}
