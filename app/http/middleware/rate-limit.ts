// Abuse limits on the endpoints anyone holding a device or provisioning key can hammer:
// state reports per device (PATCH /device/state, REPORT_RATE_LIMIT), lifecycle events per
// device (POST /device/events, DEVICE_EVENTS_RATE_LIMIT: events, not requests, are counted,
// issue #16 finding 3) and registration attempts per provisioning key (POST /device/register,
// REGISTER_RATE_LIMIT). A token bucket per caller: `limit` at once, refilled at `limit` per
// `windowMs`. Over the limit: 429 with Retry-After after the router's guard and before the
// route runs, and nothing is written. The buckets live in this process: with several
// instances behind a balancer each allows the limit.
import type { Context, Next } from 'koa';
import type { Router } from '@koa/router';
import { callerOf } from './auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';

/** A token bucket: at most `limit` at once, refilled at `limit` per `windowMs`. */
export type RateLimit = { limit: number; windowMs: number };

/** The limits; null (or, for device events, absent) turns one off. */
export type RateLimits = {
  reports: RateLimit | null;
  registrations: RateLimit | null;
  deviceEvents?: RateLimit | null;
  /** Device log lines per device (LOGS_RATE_LIMIT; app/http/routes/device-logs.ts counts them). */
  deviceLogs?: RateLimit | null;
};

/** Buckets are forgotten beyond this many callers (full ones first), bounding memory. */
const MAX_BUCKETS = 100_000;

type Bucket = { tokens: number; at: number };

/** One limit's buckets, keyed by caller; `take` answers how long to wait, 0 when allowed. */
export function createLimiter(rate: RateLimit, now: () => number) {
  const buckets = new Map<string, Bucket>();
  const perMs = rate.limit / rate.windowMs;
  const refill = (bucket: Bucket, at: number) => Math.min(rate.limit, bucket.tokens + (at - bucket.at) * perMs);
  function evict(at: number): void {
    for (const [key, bucket] of buckets) if (refill(bucket, at) >= rate.limit) buckets.delete(key);
    // still too many: the least recently used go (a Map iterates in insertion order), down to
    // 90% so that the next evictions are not one per request
    for (const key of buckets.keys()) {
      if (buckets.size < MAX_BUCKETS * 0.9) break;
      buckets.delete(key);
    }
  }
  return {
    /**
     * Takes `cost` tokens for `key`: 0 when allowed, else the seconds until they are there.
     * A cost above the whole bucket passes only when the bucket is full, and leaves it in
     * debt, so the average stays within the limit.
     */
    take(key: string, cost = 1): number {
      const at = now();
      const bucket = buckets.get(key);
      const tokens = bucket === undefined ? rate.limit : refill(bucket, at);
      const needed = Math.min(cost, rate.limit);
      buckets.delete(key);
      if (tokens >= needed) {
        if (buckets.size >= MAX_BUCKETS) evict(at);
        buckets.set(key, { tokens: tokens - cost, at });
        return 0;
      }
      buckets.set(key, { tokens, at });
      return Math.max(1, Math.ceil((needed - tokens) / perMs / 1000));
    },
    size: () => buckets.size,
  };
}

/** "60/10s" for messages. */
const describe = (rate: RateLimit) =>
  `${rate.limit} per ${rate.windowMs % 60_000 === 0 ? `${rate.windowMs / 60_000} min` : `${rate.windowMs / 1000} s`}`;

/** The 429 for a caller over `rate` (`what` names what is counted), to retry in `wait` seconds. */
export function rateLimitedError(rate: RateLimit, what: string, wait: number): HttpError {
  return new HttpError(429, 'rate_limited', `too many ${what}: at most ${describe(rate)}; retry in ${wait} s`, {
    limit: rate.limit,
    window_ms: rate.windowMs,
    retry_after_s: wait,
  }, { 'Retry-After': String(wait) });
}

function limitBy(
  deps: AppDeps,
  rate: RateLimit,
  what: string,
  keyOf: (ctx: Context) => string | null,
  costOf: (ctx: Context) => number = () => 1,
) {
  const limiter = createLimiter(rate, () => deps.clock().getTime());
  return async function rateLimited(ctx: Context, next: Next): Promise<void> {
    const key = keyOf(ctx);
    const wait = key === null ? 0 : limiter.take(key, costOf(ctx));
    if (wait > 0) throw rateLimitedError(rate, what, wait);
    await next();
  };
}

/**
 * Limits state reports per device on the device router. Registered after the router's guard,
 * so a bad credential is a 401 as before and each bucket belongs to a real device.
 */
export function reportRateLimit(router: Router, deps: AppDeps, rate: RateLimit | null | undefined): void {
  if (!rate) return;
  router.use(
    '/device/state',
    limitBy(
      deps,
      rate,
      'state reports from this device',
      (ctx) => ctx.method === 'PATCH' ? callerOf(ctx, 'device').uuid : null,
    ),
  );
}

/**
 * Limits lifecycle events per device on the device router, after its guard: a request costs
 * as many tokens as the events it carries (one when the body holds no list of events; the
 * route then answers 400), so 60 requests of 100 events weigh 6,000, not 60.
 */
export function deviceEventsRateLimit(router: Router, deps: AppDeps, rate: RateLimit | null | undefined): void {
  if (!rate) return;
  router.use(
    '/device/events',
    limitBy(
      deps,
      rate,
      'lifecycle events from this device',
      (ctx) => ctx.method === 'POST' ? callerOf(ctx, 'device').uuid : null,
      (ctx) => {
        const events = ((ctx.request as { body?: unknown }).body as { events?: unknown } | undefined)?.events;
        return Array.isArray(events) ? Math.max(1, events.length) : 1;
      },
    ),
  );
}

/** Limits registration attempts per key on the provisioning-key router, likewise after its guard. */
export function registrationRateLimit(router: Router, deps: AppDeps, rate: RateLimit | null | undefined): void {
  if (!rate) return;
  router.use(
    '/device/register',
    limitBy(
      deps,
      rate,
      'registration attempts with this provisioning key',
      (ctx) => ctx.method === 'POST' ? callerOf(ctx, 'provisioning_key').id : null,
    ),
  );
}
