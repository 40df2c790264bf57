// Endpoints admins call: set targets, toggle devices, read devices and their events.
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { decide } from '../../../domain/device/decide.ts';
import { targetStateSchema } from '../../../domain/device/events.ts';
import { hashTargetSecrets } from '../../../domain/device/secrets.ts';
import { targetImageProblems } from '../../../domain/device/services.ts';
import { handleCommand } from '../../../infra/event-store/command-handler.ts';
import { deviceAdapter } from '../../../infra/devices/device-store.ts';
import { keepSecretValues } from '../../../infra/secrets/secret-values.ts';
import { actorOf, callerOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { instantSchema, intQuery, jsonBody, MAX_OFFSET, requestMetadata, uuidParam } from '../request.ts';
import { deviceView } from '../views.ts';

/** The seed's target body: `{apps, config}`; config may be omitted; a service's `imageName` must agree with `image`. */
export const targetBody = targetStateSchema.extend({
  apps: targetStateSchema.shape.apps.refine((apps) => Object.keys(apps).length <= 100, 'at most 100 apps'),
  config: targetStateSchema.shape.config.refine((c) => Object.keys(c).length <= 500, 'at most 500 config keys').default(
    {},
  ),
}).strict().superRefine((target, ctx) => {
  for (const problem of targetImageProblems(target.apps)) ctx.addIssue({ code: 'custom', ...problem });
});

export const activeBody = z.object({
  is_active: z.boolean(),
  reason: z.string().min(1).max(500).optional(),
}).strict();

const boolParam = z.enum(['true', 'false']).transform((v) => v === 'true');

export const deviceListQuery = z.object({
  fleet: z.string().min(1).max(128).optional(),
  in_sync: boolParam.optional(),
  active: boolParam.optional(),
  lost: boolParam.optional(),
  q: z.string().min(1).max(128).optional(),
  limit: intQuery(1, 1000).default(100),
  offset: intQuery(0, MAX_OFFSET).default(0),
}).strict();

export const eventListQuery = z.object({
  type: z.union([z.string().max(64), z.array(z.string().max(64)).max(20)]).optional(),
  since: instantSchema.optional(),
  until: instantSchema.optional(),
  after_version: intQuery(0, Number.MAX_SAFE_INTEGER).default(0),
  limit: intQuery(1, 1000).default(100),
}).strict();

/** `If-Match: "3"` → 3; absent → undefined; anything else → 400. */
export function parseIfMatch(header: string): number | undefined {
  if (header === '') return undefined;
  const match = /^(?:W\/)?"?(\d{1,12})"?$/.exec(header.trim());
  if (match === null) throw new HttpError(400, 'invalid_request', 'If-Match header must be a target version, e.g. "3"');
  return Number(match[1]);
}

async function existingDevice(deps: AppDeps, uuid: string) {
  const row = await deps.devices.get(uuid);
  if (row === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
  return row;
}

/** Registers the admin device endpoints on the admin router (its guard authenticates). */
export function adminRoutes(router: Router, deps: AppDeps): void {
  router.post('/devices/:uuid/target-state', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const uuid = uuidParam(ctx);
    const expected = parseIfMatch(ctx.get('If-Match'));
    const parsed = parseOr400(targetBody, jsonBody(ctx));
    await existingDevice(deps, uuid);
    const now = deps.clock().toISOString();
    // secrets never enter the log (README "Secrets"): the event holds markers, the values are
    // kept outside it, in the same transaction (a device polling the new target finds them; a
    // refused target, a 412, keeps nothing)
    const values = new Map<string, unknown>();
    const target = hashTargetSecrets(parsed, deps.secrets.hash, (marker, value) => values.set(marker, value));
    const result = await handleCommand(
      deps.pool,
      deps.store,
      deviceAdapter,
      uuid,
      (state) => decide({ type: 'set_target_state', now, target, expected_version: expected }, state),
      { metadata: requestMetadata(ctx, actorOf(admin)), source: 'api' },
      (transaction) => keepSecretValues(transaction, values, now),
    );
    const state = result.state;
    const version = state.status === 'registered' ? state.target?.version ?? 0 : 0;
    ctx.set('ETag', `"${version}"`);
    ctx.body = {
      uuid,
      version,
      event_id: result.events[0]?.event_id ?? null,
      in_sync: state.status === 'registered' && state.drift.in_sync,
    };
  });

  router.patch('/devices/:uuid/active', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const uuid = uuidParam(ctx);
    const body = parseOr400(activeBody, jsonBody(ctx));
    await existingDevice(deps, uuid);
    const now = deps.clock().toISOString();
    const result = await handleCommand(
      deps.pool,
      deps.store,
      deviceAdapter,
      uuid,
      (state) => decide({ type: 'set_active', now, is_active: body.is_active, reason: body.reason }, state),
      { metadata: requestMetadata(ctx, actorOf(admin)), source: 'api' },
    );
    const event = result.events[0];
    ctx.body = {
      uuid,
      is_active: body.is_active,
      changed: event !== undefined,
      event_type: event?.event_type ?? null,
      event_id: event?.event_id ?? null,
    };
  });

  router.get('/devices', async (ctx: Context) => {
    const query = parseOr400(deviceListQuery, ctx.query, 'query');
    const { devices, total } = await deps.devices.list({
      ...(query.fleet === undefined ? {} : { fleet_id: query.fleet }),
      ...(query.in_sync === undefined ? {} : { in_sync: query.in_sync }),
      ...(query.active === undefined ? {} : { is_active: query.active }),
      ...(query.lost === undefined ? {} : { connection_lost: query.lost }),
      ...(query.q === undefined ? {} : { search: query.q }),
      limit: query.limit,
      offset: query.offset,
    });
    ctx.body = { devices: devices.map(deviceView), total, limit: query.limit, offset: query.offset };
  });

  router.get('/devices/:uuid', async (ctx: Context) => {
    ctx.body = deviceView(await existingDevice(deps, uuidParam(ctx)));
  });

  router.get('/devices/:uuid/events', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(eventListQuery, ctx.query, 'query');
    await existingDevice(deps, uuid);
    const types = query.type === undefined
      ? undefined
      : (Array.isArray(query.type) ? query.type : query.type.split(',')).map((t) => t.trim()).filter((t) => t !== '');
    const events = await deps.devices.events(uuid, {
      ...(types === undefined ? {} : { types }),
      ...(query.since === undefined ? {} : { since: query.since }),
      ...(query.until === undefined ? {} : { until: query.until }),
      afterVersion: query.after_version,
      limit: query.limit,
    });
    const last = events[events.length - 1];
    ctx.body = {
      events,
      next_after_version: events.length === query.limit && last !== undefined ? last.aggregate_version : null,
    };
  });
}
