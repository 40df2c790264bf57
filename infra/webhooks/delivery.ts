// The webhook delivery worker: claims due deliveries with a lease (no transaction stays
// open during the HTTP call, so listeners' horizons are not held back), POSTs the event
// JSON signed with the webhook's secret, records every attempt, and retries failures with
// exponential backoff until the last attempt, when the delivery is marked failed. Safe on
// several instances at once: claims use FOR UPDATE SKIP LOCKED. Each attempt resolves the
// webhook's host, checks the addresses against the address policy and connects to the checked
// one (address-policy.ts, webhook-post.ts); the event goes without the caller's IP address and
// user agent unless the webhook asked for them (include_client_info).
import { performance } from 'node:perf_hooks';
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { poolUrl } from '../postgres/database-source.ts';
import { type DedicatedSession, openDedicatedSession } from '../postgres/dedicated-session.ts';
import type { RealtimeLog } from '../realtime/leader-loop.ts';
import { type Backoff, backoffDelay, retry } from '../retry.ts';
import {
  DEFAULT_ADDRESS_POLICY,
  resolveWebhookTarget,
  type WebhookAddressPolicy,
  WebhookTargetError,
} from './address-policy.ts';
import { signWebhook, WEBHOOK_HEADERS } from './signature.ts';
import { postWebhook, WebhookPostError } from './webhook-post.ts';
import { transaction } from '../postgres/transaction.ts';

/** The channel new deliveries notify. */
export const WEBHOOK_DELIVERIES_CHANNEL = 'devicetrail_webhook_deliveries';

/** How the worker delivers. */
export type WebhookWorkerOptions = {
  pool: DatabasePool;
  /** Attempts before a delivery is marked failed (default 8). */
  maxAttempts?: number;
  /** Delay before the second attempt; doubles each time up to `retryMaxMs` (defaults 1 s, 1 h). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Per-attempt timeout (default 10 s). */
  timeoutMs?: number;
  /** Deliveries attempted at once (default 4). */
  concurrency?: number;
  pollIntervalMs?: number;
  /** Which addresses deliveries may reach (default: public ones only, resolved by the system). */
  addressPolicy?: WebhookAddressPolicy;
  log?: RealtimeLog;
};

const claimedRow = z.object({
  id: z.string(),
  webhook_id: z.string(),
  event_type: z.string(),
  payload: z.unknown(),
  attempts: z.number(),
  url: z.string(),
  secret: z.string(),
  include_client_info: z.boolean(),
});
type Claimed = z.infer<typeof claimedRow>;

/** Claims up to `limit` due deliveries for `leaseSeconds`, counting the attempt. */
async function claimDue(
  connection: CommonQueryMethods,
  limit: number,
  leaseSeconds: number,
): Promise<readonly Claimed[]> {
  return connection.any(sql.type(claimedRow)`
    UPDATE webhook_deliveries d
       SET locked_until = now() + make_interval(secs => ${leaseSeconds}), attempts = d.attempts + 1
      FROM webhooks w
     WHERE w.id = d.webhook_id AND w.deleted_at IS NULL
       AND d.id IN (SELECT id FROM webhook_deliveries
                     WHERE status = 'pending' AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now())
                     ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED)
    RETURNING d.id, d.webhook_id, d.event_type, d.payload, d.attempts, w.url, w.secret, w.include_client_info`);
}

/** One attempt's outcome. */
type Outcome = {
  attemptedAt: string;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  responseBody: string | null;
  ok: boolean;
};

/** Records an attempt and schedules the next one (or ends the delivery), in one transaction. */
async function recordAttempt(
  connection: CommonQueryMethods,
  delivery: Claimed,
  outcome: Outcome,
  retryInMs: number | null,
): Promise<void> {
  const status = outcome.ok ? 'succeeded' : retryInMs === null ? 'failed' : 'pending';
  await transaction(connection, async (t) => {
    await t.query(sql.unsafe`
      INSERT INTO webhook_delivery_attempts (delivery_id, attempt, attempted_at, duration_ms, status_code, error, response_body)
      VALUES (${delivery.id}, ${delivery.attempts}, ${outcome.attemptedAt}::timestamptz, ${outcome.durationMs},
              ${outcome.statusCode}, ${outcome.error}, ${outcome.responseBody})
      ON CONFLICT DO NOTHING`);
    await t.query(sql.unsafe`
      UPDATE webhook_deliveries
         SET status = ${status}, locked_until = NULL, last_status_code = ${outcome.statusCode}, last_error = ${outcome.error},
             next_attempt_at = now() + make_interval(secs => ${(retryInMs ?? 0) / 1000}),
             completed_at = CASE WHEN ${status} = 'pending' THEN NULL ELSE now() END
       WHERE id = ${delivery.id} AND status = 'pending'`);
  });
}

const nextDueRow = z.object({ wait_ms: z.number().nullable() });

/** Milliseconds until the next pending delivery is due (null when none). */
async function nextDueInMs(connection: CommonQueryMethods): Promise<number | null> {
  return connection.oneFirst(sql.type(nextDueRow)`
    SELECT (EXTRACT(EPOCH FROM (min(GREATEST(next_attempt_at, COALESCE(locked_until, next_attempt_at))) - now())) * 1000)::float8 AS wait_ms
      FROM webhook_deliveries WHERE status = 'pending'`);
}

/** The event JSON without the caller's IP address and user agent (metadata.ip_address, metadata.user_agent). */
export function withoutClientInfo(payload: unknown): unknown {
  if (typeof payload !== 'object' || payload === null) return payload;
  const metadata = (payload as { metadata?: unknown }).metadata;
  if (typeof metadata !== 'object' || metadata === null) return payload;
  const { ip_address: _ip, user_agent: _agent, ...rest } = metadata as Record<string, unknown>;
  return { ...payload, metadata: rest };
}

/** `work`, or a WebhookPostError "timeout" after `ms` (a resolver cannot be cancelled; its answer is then ignored). */
async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WebhookPostError('timeout')), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the delivery log says about a failed attempt: the policy's or the wire's own words, never a raw error. */
function failureText(error: unknown, timeoutMs: number): string {
  if (error instanceof WebhookPostError) {
    return error.kind === 'timeout' ? `timed out after ${timeoutMs} ms` : error.message;
  }
  if (error instanceof WebhookTargetError) return error.message;
  return 'delivery failed';
}

/** The worker loop's wait after a failed round (database down…): 250 ms doubling to 30 s. */
const ERROR_BACKOFF: Backoff = { baseMs: 250, maxMs: 30_000 };

/** A delivery worker; start() runs it in the background, runOnce() attempts what is due now. */
export class WebhookWorker {
  readonly #options: Required<Omit<WebhookWorkerOptions, 'log'>> & { log: RealtimeLog };
  #running = false;
  #loop: Promise<void> | null = null;
  #session: DedicatedSession | null = null;
  #wakeUp: (() => void) | null = null;
  #pendingWake = false;

  constructor(options: WebhookWorkerOptions) {
    this.#options = {
      maxAttempts: 8,
      retryBaseMs: 1000,
      retryMaxMs: 3_600_000,
      timeoutMs: 10_000,
      concurrency: 4,
      pollIntervalMs: 1000,
      addressPolicy: DEFAULT_ADDRESS_POLICY,
      log: (level, message) => {
        if (level !== 'info') console.error(`[devicetrail] ${message}`);
      },
      ...options,
    };
  }

  /** Attempts every delivery due now (up to `concurrency`); returns how many. */
  async runOnce(): Promise<number> {
    const { pool, concurrency, timeoutMs } = this.#options;
    const claimed = await claimDue(pool, concurrency, Math.ceil(timeoutMs / 1000) + 30);
    await Promise.all(claimed.map((delivery) => this.#deliver(delivery)));
    return claimed.length;
  }

  /** Runs in the background until stop(); woken by new deliveries, polling as a fallback. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#listen().catch((error: unknown) =>
      this.#options.log('warn', `webhook worker: no LISTEN session (${(error as Error).message}); polling only`)
    );
    this.#loop = this.#run();
  }

  /** Finishes the attempts in hand and stops. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wakeUp?.();
    await this.#loop;
    await this.#session?.close();
    this.#session = null;
  }

  async #listen(): Promise<void> {
    const session = await openDedicatedSession(poolUrl(this.#options.pool), {
      onNotification: () => this.#wake(),
      onLost: () => {
        if (this.#session === session) this.#session = null;
      },
    });
    await session.listen(WEBHOOK_DELIVERIES_CHANNEL);
    this.#session = session;
  }

  #wake(): void {
    this.#pendingWake = true;
    this.#wakeUp?.();
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#pendingWake || !this.#running) {
      this.#pendingWake = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wakeUp = null;
        resolve();
      }, Math.max(0, ms));
      this.#wakeUp = () => {
        clearTimeout(timer);
        this.#wakeUp = null;
        this.#pendingWake = false;
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    const { pollIntervalMs, log } = this.#options;
    while (this.#running) {
      let due: number | null;
      try {
        // the error wait is the worker's own sleep: a new delivery or stop() ends it early
        due = await retry(() => this.#round(), {
          delay: ERROR_BACKOFF,
          shouldRetry: () => this.#running,
          wait: (ms) => this.#sleep(ms),
          onRetry: (error, _attempt, ms) =>
            log('error', `webhook worker: ${(error as Error).message}; retrying in ${ms} ms`, error),
        });
      } catch {
        break; // shouldRetry refuses only once stopped
      }
      await this.#sleep(due === null ? pollIntervalMs : Math.min(Math.max(due, 10), pollIntervalMs));
    }
  }

  /** Attempts what is due until nothing is; returns the milliseconds until the next delivery is due. */
  async #round(): Promise<number | null> {
    while (this.#running) {
      if (this.#session === null) await this.#listen().catch(() => undefined);
      this.#pendingWake = false;
      if ((await this.runOnce()) > 0) continue;
      return nextDueInMs(this.#options.pool);
    }
    return null;
  }

  async #deliver(delivery: Claimed): Promise<void> {
    const { timeoutMs, maxAttempts, retryBaseMs, retryMaxMs, log, pool, addressPolicy } = this.#options;
    const body = JSON.stringify(delivery.include_client_info ? delivery.payload : withoutClientInfo(delivery.payload));
    const timestamp = String(Math.floor(Date.now() / 1000));
    const attemptedAt = new Date().toISOString();
    const started = performance.now();
    let outcome: Outcome;
    try {
      const url = new URL(delivery.url);
      // resolved and checked once per attempt; the connection goes to that address
      const target = await within(resolveWebhookTarget(url, addressPolicy), timeoutMs);
      const response = await postWebhook(url, target, {
        timeoutMs: Math.max(1, timeoutMs - Math.round(performance.now() - started)),
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'devicetrail-webhooks/1',
          [WEBHOOK_HEADERS.delivery]: delivery.id,
          [WEBHOOK_HEADERS.event]: delivery.event_type,
          [WEBHOOK_HEADERS.webhook]: delivery.webhook_id,
          [WEBHOOK_HEADERS.attempt]: String(delivery.attempts),
          [WEBHOOK_HEADERS.timestamp]: timestamp,
          [WEBHOOK_HEADERS.signature]: signWebhook(delivery.secret, timestamp, body),
        },
        body,
      });
      const ok = response.status >= 200 && response.status < 300;
      outcome = {
        attemptedAt,
        durationMs: Math.round(performance.now() - started),
        statusCode: response.status,
        error: ok ? null : `HTTP ${response.status}`,
        responseBody: response.excerpt === '' ? null : response.excerpt,
        ok,
      };
    } catch (error) {
      outcome = {
        attemptedAt,
        durationMs: Math.round(performance.now() - started),
        statusCode: null,
        error: failureText(error, timeoutMs),
        responseBody: null,
        ok: false,
      };
    }
    const retryIn = outcome.ok || delivery.attempts >= maxAttempts
      ? null
      : backoffDelay(delivery.attempts, { baseMs: retryBaseMs, maxMs: retryMaxMs, jitter: 0.2 });
    await recordAttempt(pool, delivery, outcome, retryIn);
    if (!outcome.ok) {
      const next = retryIn === null ? 'giving up' : `retrying in ${retryIn} ms`;
      log(
        'warn',
        `webhook ${delivery.webhook_id}: delivery ${delivery.id} attempt ${delivery.attempts}/${maxAttempts} failed (${outcome.error}); ${next}`,
      );
    }
  }
}
