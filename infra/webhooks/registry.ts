// The webhook registry and delivery history: one SQL operation per function. The secret
// is read only by the delivery worker; nothing here returns it.
import { randomUUID } from 'node:crypto';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { transaction } from '../postgres/transaction.ts';

const webhookRow = z.object({
  id: z.string(),
  url: z.string(),
  event_types: z.array(z.string()),
  description: z.string().nullable(),
  include_client_info: z.boolean(),
  created_by: z.string(),
  created_at: z.string(),
  deleted_at: z.string().nullable(),
});

/** A webhook as shown to admins (never its secret). */
export type Webhook = z.infer<typeof webhookRow>;

const webhookColumns = sql
  .fragment`id, url, event_types, description, include_client_info, created_by, created_at, deleted_at`;

/** What registering a webhook needs. */
export type NewWebhook = {
  url: string;
  event_types: readonly string[];
  secret: string;
  description: string | null;
  /** Whether payloads keep the caller's IP address and user agent (metadata.ip_address, metadata.user_agent). */
  include_client_info: boolean;
  created_by: string;
  created_at: string;
};

/** True when an event type is selected by a webhook's patterns (`*`, `device.*` or exact). */
export function matchesEventType(patterns: readonly string[], type: string): boolean {
  return patterns.some((p) => p === '*' || p === type || (p.endsWith('.*') && type.startsWith(p.slice(0, -1))));
}

/** Stores a webhook and returns it. */
export async function createWebhook(connection: CommonQueryMethods, webhook: NewWebhook): Promise<Webhook> {
  return connection.one(sql.type(webhookRow)`
    INSERT INTO webhooks (id, url, event_types, secret, description, include_client_info, created_by, created_at)
    VALUES (${randomUUID()}, ${webhook.url}, ${sql.array([...webhook.event_types], 'text')}, ${webhook.secret},
            ${webhook.description}, ${webhook.include_client_info}, ${webhook.created_by}, ${webhook.created_at}::timestamptz)
    RETURNING ${webhookColumns}`);
}

/** Webhooks, oldest first; deleted ones only when asked. */
export async function listWebhooks(
  connection: CommonQueryMethods,
  options: { includeDeleted?: boolean } = {},
): Promise<readonly Webhook[]> {
  const live = options.includeDeleted === true ? sql.fragment`true` : sql.fragment`deleted_at IS NULL`;
  return connection.any(
    sql.type(webhookRow)`SELECT ${webhookColumns} FROM webhooks WHERE ${live} ORDER BY created_at, id`,
  );
}

/** One webhook (deleted or not), or null. */
export async function getWebhook(connection: CommonQueryMethods, id: string): Promise<Webhook | null> {
  return connection.maybeOne(sql.type(webhookRow)`SELECT ${webhookColumns} FROM webhooks WHERE id = ${id}`);
}

/** Deletes a webhook (kept with its history, marked deleted) and cancels its pending deliveries; false when unknown or already deleted. */
export async function deleteWebhook(connection: CommonQueryMethods, id: string, at: string): Promise<boolean> {
  return transaction(connection, async (t) => {
    const row = await t.maybeOne(sql.type(z.object({ id: z.string() }))`
      UPDATE webhooks SET deleted_at = ${at}::timestamptz WHERE id = ${id} AND deleted_at IS NULL RETURNING id`);
    if (row === null) return false;
    await t.query(sql.unsafe`
      UPDATE webhook_deliveries SET status = 'cancelled', completed_at = now(), locked_until = NULL
       WHERE webhook_id = ${id} AND status = 'pending'`);
    return true;
  });
}

const subscriptionRow = z.object({ id: z.string(), event_types: z.array(z.string()) });

/** The live webhooks' ids and event types, for the dispatcher. */
export async function listSubscriptions(
  connection: CommonQueryMethods,
): Promise<readonly z.infer<typeof subscriptionRow>[]> {
  return connection.any(sql.type(subscriptionRow)`SELECT id, event_types FROM webhooks WHERE deleted_at IS NULL`);
}

/** Queues one delivery of `payload` per webhook; an event already queued for a webhook is skipped. */
export async function enqueueDeliveries(
  connection: CommonQueryMethods,
  webhookIds: readonly string[],
  event: { event_id: string; event_type: string },
  payload: unknown,
): Promise<void> {
  if (webhookIds.length === 0) return;
  await connection.query(sql.unsafe`
    INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload)
    SELECT d, w, ${event.event_id}, ${event.event_type}, ${sql.jsonb(payload as never)}
      FROM ${sql.unnest(webhookIds.map((w) => [randomUUID(), w]), ['uuid', 'uuid'])} AS u(d, w)
    ON CONFLICT (webhook_id, event_id) DO NOTHING`);
}

const attemptSchema = z.object({
  attempt: z.number(),
  attempted_at: z.string(),
  duration_ms: z.number(),
  status_code: z.number().nullable(),
  error: z.string().nullable(),
  response_body: z.string().nullable(),
});

const deliveryRow = z.object({
  id: z.string(),
  webhook_id: z.string(),
  event_id: z.string(),
  event_type: z.string(),
  status: z.enum(['pending', 'succeeded', 'failed', 'cancelled']),
  attempts: z.number(),
  next_attempt_at: z.string().nullable(),
  last_status_code: z.number().nullable(),
  last_error: z.string().nullable(),
  created_at: z.string(),
  completed_at: z.string().nullable(),
  attempt_log: z.array(attemptSchema),
});

/** A delivery with every attempt made. */
export type WebhookDelivery = z.infer<typeof deliveryRow>;

/** A webhook's deliveries, newest first. */
export async function listDeliveries(
  connection: CommonQueryMethods,
  webhookId: string,
  options: { status?: WebhookDelivery['status'] | undefined; limit: number; offset: number },
): Promise<readonly WebhookDelivery[]> {
  const status = options.status === undefined ? sql.fragment`` : sql.fragment`AND d.status = ${options.status}`;
  return connection.any(sql.type(deliveryRow)`
    SELECT d.id, d.webhook_id, d.event_id, d.event_type, d.status, d.attempts,
           CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
           d.last_status_code, d.last_error, d.created_at, d.completed_at,
           COALESCE((SELECT jsonb_agg(jsonb_build_object(
                       'attempt', a.attempt, 'attempted_at', to_char(a.attempted_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                       'duration_ms', a.duration_ms, 'status_code', a.status_code, 'error', a.error, 'response_body', a.response_body)
                     ORDER BY a.attempt)
                       FROM webhook_delivery_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb) AS attempt_log
      FROM webhook_deliveries d
     WHERE d.webhook_id = ${webhookId} ${status}
     ORDER BY d.created_at DESC, d.id
     LIMIT ${options.limit} OFFSET ${options.offset}`);
}
