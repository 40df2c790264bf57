// The webhook dispatcher: an EventListener ("webhooks") that queues one delivery per
// matching webhook for each event. Delivery itself is the worker's job
// (infra/webhooks/delivery.ts), so a slow receiver never holds up the listener.
import type { DatabasePool } from 'slonik';
import { feedEventJson, type FeedFilter } from '../realtime/feed.ts';
import { EventListener } from '../realtime/event-listener.ts';
import type { RealtimeLog } from '../realtime/leader-loop.ts';
import { enqueueDeliveries, listSubscriptions, matchesEventType } from './registry.ts';

/** The dispatcher listener's name. */
export const WEBHOOK_DISPATCHER = 'webhooks';

/**
 * The events a set of webhooks wants, as a feed filter: all for `*`, else the exact types
 * and the `prefix.*` patterns (no webhook: no event).
 */
export function subscriptionFilter(
  subscriptions: readonly { event_types: readonly string[] }[],
): FeedFilter | undefined {
  const patterns = new Set(subscriptions.flatMap((s) => s.event_types));
  if (patterns.has('*')) return undefined;
  const types = [...patterns].filter((p) => !p.endsWith('.*')).sort();
  const typePrefixes = [...patterns].filter((p) => p.endsWith('.*')).map((p) => p.slice(0, -1)).sort();
  return { types, typePrefixes };
}

/** Creates the dispatcher. A new installation starts with the events from now on. */
export function createWebhookDispatcher(
  pool: DatabasePool,
  options: { pollIntervalMs?: number; lockPollMs?: number; log?: RealtimeLog } = {},
): EventListener {
  let subscriptions: Awaited<ReturnType<typeof listSubscriptions>> = [];
  const listener = new EventListener({
    name: WEBHOOK_DISPATCHER,
    pool,
    startFrom: 'now',
    batchSize: 200,
    // queueing fails only when the database does: keep trying for a while before dead-lettering
    maxAttempts: 10,
    retryBaseMs: 200,
    // under ingest load, one read per quarter second rather than one per commit
    coalesceMs: 250,
    ...options,
    // only the events some webhook wants are read (most reports match none); the filter is
    // asked again after each read, so a webhook committed before an event is never missed
    select: async () => subscriptionFilter(await listSubscriptions(pool)),
    // read after the batch, so every webhook committed before its events is seen
    beforeBatch: async () => {
      subscriptions = await listSubscriptions(pool);
    },
  });
  listener.onAny(async (event) => {
    const ids = subscriptions.filter((s) => matchesEventType(s.event_types, event.event_type)).map((s) => s.id);
    await enqueueDeliveries(pool, ids, event, feedEventJson(event));
  });
  return listener;
}
