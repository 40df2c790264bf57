// The webhook dispatcher: an EventListener ("webhooks") that queues one delivery per
// matching webhook for each event. Delivery itself is the worker's job
// (infra/webhooks-delivery.ts), so a slow receiver never holds up the listener.
import type { DatabasePool } from 'slonik';
import { feedEventJson } from './event-feed.ts';
import { EventListener } from './event-listener.ts';
import type { RealtimeLog } from './leader-loop.ts';
import { enqueueDeliveries, listSubscriptions, matchesEventType } from './webhooks-registry.ts';

/** The dispatcher listener's name. */
export const WEBHOOK_DISPATCHER = 'webhooks';

/** Creates the dispatcher. A new installation starts with the events from now on. */
export function createWebhookDispatcher(pool: DatabasePool, options: { pollIntervalMs?: number; lockPollMs?: number; log?: RealtimeLog } = {}): EventListener {
  let subscriptions: Awaited<ReturnType<typeof listSubscriptions>> = [];
  const listener = new EventListener({
    name: WEBHOOK_DISPATCHER,
    pool,
    startFrom: 'now',
    batchSize: 200,
    // queueing fails only when the database does: keep trying for a while before dead-lettering
    maxAttempts: 10,
    retryBaseMs: 200,
    ...options,
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
