// Provisioning keys: admins create (the secret is shown once), list and revoke them.
import { randomUUID } from 'node:crypto';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { decideProvisioningKey } from '../../../domain/provisioning-key/decider.ts';
import { handleCommand } from '../../../infra/event-store/command-handler.ts';
import { generateSecret, PROVISIONING_KEY_PREFIX } from '../../../infra/devices/credentials.ts';
import { insertKeyRow, provisioningKeyAdapter } from '../../../infra/devices/provisioning-key-store.ts';
import { actorOf, callerOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { instantSchema, jsonBody, requestMetadata, uuidSchema } from '../request.ts';

export const createKeyBody = z.object({
  fleet_id: z.string().min(1).max(128),
  description: z.string().min(1).max(500).optional(),
  expires_at: instantSchema.optional(),
  max_devices: z.number().int().min(1).max(1_000_000).optional(),
}).strict();

export const revokeKeyBody = z.object({ reason: z.string().min(1).max(500).optional() }).strict();

/** Registers the provisioning key endpoints on the admin router (its guard authenticates). */
export function provisioningKeyRoutes(router: Router, deps: AppDeps): void {
  router.post('/provisioning-keys', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const body = parseOr400(createKeyBody, jsonBody(ctx));
    const now = deps.clock().toISOString();
    if (body.expires_at !== undefined && body.expires_at <= now) {
      throw new HttpError(400, 'invalid_request', 'body.expires_at: must be in the future');
    }
    const id = randomUUID();
    const secret = generateSecret(PROVISIONING_KEY_PREFIX);
    await handleCommand(
      deps.pool,
      deps.store,
      provisioningKeyAdapter,
      id,
      (state) =>
        decideProvisioningKey({
          type: 'create_provisioning_key',
          now,
          fleet_id: body.fleet_id,
          description: body.description ?? null,
          expires_at: body.expires_at ?? null,
          max_devices: body.max_devices ?? null,
        }, state),
      { metadata: requestMetadata(ctx, actorOf(admin)), source: 'api' },
      async (tx, result) => insertKeyRow(tx, deps.credentials, id, secret, result.state),
    );
    ctx.status = 201;
    ctx.body = { ...(await deps.provisioningKeys.get(id)), key: secret };
  });

  router.get('/provisioning-keys', async (ctx: Context) => {
    ctx.body = { provisioning_keys: await deps.provisioningKeys.list() };
  });

  router.delete('/provisioning-keys/:id', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const id = uuidSchema.safeParse((ctx as unknown as { params: { id: string } }).params.id);
    if (!id.success) throw new HttpError(400, 'invalid_request', 'path parameter id: must be a uuid');
    const raw = ctx.request.length > 0 ? jsonBody(ctx) : {};
    const body = parseOr400(revokeKeyBody, raw ?? {});
    if ((await deps.provisioningKeys.get(id.data)) === null) {
      throw new HttpError(404, 'provisioning_key_not_found', `no provisioning key ${id.data}`);
    }
    const now = deps.clock().toISOString();
    const result = await handleCommand(
      deps.pool,
      deps.store,
      provisioningKeyAdapter,
      id.data,
      (state) => decideProvisioningKey({ type: 'revoke_provisioning_key', now, reason: body.reason ?? null }, state),
      { metadata: requestMetadata(ctx, actorOf(admin)), source: 'api' },
    );
    ctx.body = { ...(await deps.provisioningKeys.get(id.data)), changed: result.events.length > 0 };
  });
}
