// The built-in real-time jobs a service process runs (REALTIME_JOBS=true, the default):
// the webhook dispatcher (an EventListener), the webhook delivery worker, and the
// device_summary projection in continuous mode. Several instances may run them: the
// listener and the projection run in one process at a time, delivery in all.
import type { DatabasePool } from 'slonik';
import type { RealtimeLog } from '../infra/realtime/leader-loop.ts';
import { deviceSummaryProjection } from '../infra/realtime/projections/device-summary.ts';
import { createWebhookDispatcher } from '../infra/webhooks/dispatcher.ts';
import { WebhookWorker } from '../infra/webhooks/delivery.ts';
import { DEFAULT_ADDRESS_POLICY } from '../infra/webhooks/address-policy.ts';
import type { Config } from './config.ts';
import { registerLagGauge } from './observability/metrics.ts';

/** Running jobs; `stop()` stops them all. */
export type RealtimeJobs = { stop: () => Promise<void> };

/** Starts the jobs for a pool with the configured polling and webhook retry policy. */
export async function startRealtimeJobs(
  pool: DatabasePool,
  config: Pick<
    Config,
    | 'LISTENER_POLL_MS'
    | 'WEBHOOK_MAX_ATTEMPTS'
    | 'WEBHOOK_RETRY_BASE_MS'
    | 'WEBHOOK_TIMEOUT_MS'
    | 'WEBHOOK_ALLOW_PRIVATE'
  >,
  log: RealtimeLog,
): Promise<RealtimeJobs> {
  const dispatcher = createWebhookDispatcher(pool, { pollIntervalMs: config.LISTENER_POLL_MS, log });
  const worker = new WebhookWorker({
    pool,
    log,
    maxAttempts: config.WEBHOOK_MAX_ATTEMPTS,
    retryBaseMs: config.WEBHOOK_RETRY_BASE_MS,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    pollIntervalMs: config.LISTENER_POLL_MS,
    addressPolicy: { ...DEFAULT_ADDRESS_POLICY, allowPrivate: config.WEBHOOK_ALLOW_PRIVATE },
  });
  const summary = deviceSummaryProjection(pool);
  const stops: (() => Promise<void> | void)[] = [];
  const stop = async () => {
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    await dispatcher.start();
    stops.push(() => dispatcher.stop());
    stops.push(registerLagGauge(dispatcher.name, async () => {
      const lag = await dispatcher.lag();
      return { events: lag.events_behind, seconds: lag.seconds_behind };
    }));
    await worker.start();
    stops.push(() => worker.stop());
    await summary.start();
    stops.push(() => summary.stop());
    stops.push(registerLagGauge(`projection:${summary.name}`, async () => {
      const status = await summary.status();
      return { events: status.events_behind, seconds: status.seconds_behind };
    }));
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}
