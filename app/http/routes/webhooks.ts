// Alert webhooks (admin): register, list, delete, and see every delivery with its attempts.
//   POST   /api/v1/webhooks                 {url, event_types, secret?, description?, include_client_info?}
//                                           → 201, secret shown once; a URL the address policy refuses → 400
//   GET    /api/v1/webhooks[?include_deleted=true]
//   GET    /api/v1/webhooks/:id
//   DELETE /api/v1/webhooks/:id             → 204 (pending deliveries are cancelled)
//   GET    /api/v1/webhooks/:id/deliveries[?status=&limit=&offset=]
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { deviceEventSchemas } from '../../../domain/device/events.ts';
import { provisioningKeyEventSchemas } from '../../../domain/provisioning-key/events.ts';
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  listDeliveries,
  listWebhooks,
  type Webhook,
} from '../../../infra/webhooks/registry.ts';
import { checkWebhookUrl, WebhookTargetError } from '../../../infra/webhooks/address-policy.ts';
import { generateWebhookSecret } from '../../../infra/webhooks/signature.ts';
import { callerOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { intQuery, jsonBody, MAX_OFFSET, uuidParam } from '../request.ts';

/** Event types a webhook may name: the catalogue's, `*`, or a prefix such as `device.*`. */
export const knownEventTypes = (): string[] =>
  [...Object.keys(deviceEventSchemas), ...Object.keys(provisioningKeyEventSchemas)].sort();

const eventTypePattern = z.string().min(1).max(64).superRefine((value, ctx) => {
  if (value === '*') return;
  if (value.endsWith('.*') && /^[a-z0-9_]+(\.[a-z0-9_]+)*\.\*$/.test(value)) return;
  if (!knownEventTypes().includes(value)) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: `unknown event type "${value}"; use "*", a prefix like "device.*", or one of: ${
        knownEventTypes().join(', ')
      }`,
    });
  }
});

const webhookUrl = z.string().max(2048).url('must be an absolute http(s) URL').refine(
  (s) => /^https?:\/\//i.test(s),
  'must be an http or https URL',
);

/** Body of POST /webhooks. */
export const webhookBody = z.object({
  url: webhookUrl,
  event_types: z.array(eventTypePattern).min(1, 'name at least one event type').max(50),
  secret: z.string().min(16, 'must be at least 16 characters').max(256).regex(
    /^[\x21-\x7e]+$/,
    'must be printable ASCII without spaces',
  ).optional(),
  description: z.string().min(1).max(500).optional(),
  // the caller's IP address and user agent go to the receiver only when asked for (issue #16)
  include_client_info: z.boolean().optional(),
}).strict();

/** Query of GET /webhooks. */
export const listQuery = z.object({
  include_deleted: z.enum(['true', 'false']).transform((v) => v === 'true').optional(),
}).strict();

/** Query of GET /webhooks/:id/deliveries. */
export const deliveriesQuery = z.object({
  status: z.enum(['pending', 'succeeded', 'failed', 'cancelled']).optional(),
  limit: intQuery(1, 500).default(50),
  offset: intQuery(0, MAX_OFFSET).default(0),
}).strict();

/** A webhook as served (never the secret). */
export const webhookView = (w: Webhook) => ({
  id: w.id,
  url: w.url,
  event_types: w.event_types,
  description: w.description,
  include_client_info: w.include_client_info,
  created_by: w.created_by,
  created_at: w.created_at,
  deleted_at: w.deleted_at,
});

async function existingWebhook(deps: AppDeps, id: string): Promise<Webhook> {
  const webhook = await getWebhook(deps.pool, id);
  if (webhook === null) throw new HttpError(404, 'webhook_not_found', `no webhook ${id}`);
  return webhook;
}

/** Registers the webhook endpoints on the admin router (its guard authenticates). */
export function webhookRoutes(router: Router, deps: AppDeps): void {
  router.post('/webhooks', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const body = parseOr400(webhookBody, jsonBody(ctx));
    await checkWebhookUrl(body.url, deps.webhookPolicy).catch((error: unknown) => {
      if (error instanceof WebhookTargetError) {
        throw new HttpError(400, 'invalid_request', `body.url: ${error.message}`);
      }
      throw error;
    });
    const secret = body.secret ?? generateWebhookSecret();
    const webhook = await createWebhook(deps.pool, {
      url: body.url,
      event_types: [...new Set(body.event_types)],
      secret,
      description: body.description ?? null,
      include_client_info: body.include_client_info ?? false,
      created_by: admin.id,
      created_at: deps.clock().toISOString(),
    });
    ctx.status = 201;
    ctx.set('Location', `/api/v1/webhooks/${webhook.id}`);
    // the only time the secret leaves the server
    ctx.body = { ...webhookView(webhook), secret };
  });

  router.get('/webhooks', async (ctx: Context) => {
    const query = parseOr400(listQuery, ctx.query, 'query');
    const webhooks = await listWebhooks(deps.pool, { includeDeleted: query.include_deleted ?? false });
    ctx.body = { webhooks: webhooks.map(webhookView) };
  });

  router.get('/webhooks/:id', async (ctx: Context) => {
    ctx.body = webhookView(await existingWebhook(deps, uuidParam(ctx, 'id')));
  });

  router.delete('/webhooks/:id', async (ctx: Context) => {
    const id = uuidParam(ctx, 'id');
    if (!(await deleteWebhook(deps.pool, id, deps.clock().toISOString()))) {
      throw new HttpError(404, 'webhook_not_found', `no webhook ${id} (or it was already deleted)`);
    }
    ctx.status = 204;
  });

  router.get('/webhooks/:id/deliveries', async (ctx: Context) => {
    const id = uuidParam(ctx, 'id');
    const query = parseOr400(deliveriesQuery, ctx.query, 'query');
    await existingWebhook(deps, id);
    const deliveries = await listDeliveries(deps.pool, id, {
      status: query.status,
      limit: query.limit,
      offset: query.offset,
    });
    ctx.body = { deliveries, limit: query.limit, offset: query.offset };
  });
}
