// Configuration: every environment variable devicetrail reads, validated in one place.
import { Buffer } from 'node:buffer';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import { z } from 'zod';
import { MIN_PEPPER_LENGTH } from '../infra/devices/credentials.ts';

/** True under Deno, which has no working node:cluster: WORKERS is then 1. */
export const isDeno = 'Deno' in globalThis;

/** The default WORKERS: one per core on Node; 1 under Deno (no node:cluster there). */
export const defaultWorkers = (): number => (isDeno ? 1 : Math.max(1, availableParallelism()));

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "1h30m", "500ms", "2d" → milliseconds; null when not a duration. */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(trimmed)) return null;
  let total = 0;
  for (const [, amount, unit] of trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    total += Number(amount) * durationUnits[unit!]!;
  }
  return Math.round(total);
}

/** A duration variable in milliseconds, at least `minMs`. */
const duration = (minMs: number) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === null) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `must be a duration like 90s, 15m, 1h30m (units ms, s, m, h, d), got "${text}"`,
      });
    } else if (ms < minMs) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be at least ${minMs} ms, got "${text}"` });
    }
    return ms ?? 0;
  });

/** "60/10s" → a token bucket of 60 refilled every 10 s; "off" → null. */
const rateLimit = z.string().transform((text, ctx) => {
  if (text.trim() === 'off') return null;
  const match = /^\s*(\d{1,9})\s*\/\s*(\S+)\s*$/.exec(text);
  const windowMs = match === null ? null : parseDuration(match[2]!);
  if (match === null || windowMs === null || windowMs < 1000 || Number(match[1]) < 1) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message:
        `must be "off" or <count>/<duration> with a count of at least 1 and a duration of at least 1s, e.g. 60/10s, got "${text}"`,
    });
    return null;
  }
  return { limit: Number(match[1]), windowMs };
});

/**
 * SECRETS_KEY: the key secret values are hashed with (README "Secrets"), 32 bytes or more as
 * hex or base64. Its value never appears in a message.
 */
const secretsKey = z.string().transform((text, ctx) => {
  const trimmed = text.trim();
  const bytes = /^([0-9a-fA-F]{2})+$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)
    ? Buffer.from(trimmed, 'base64')
    : null;
  if (bytes === null || bytes.length < 32) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: 'must be at least 32 bytes as hex (64 digits) or base64, e.g. the output of `openssl rand -hex 32`',
    });
    return Buffer.alloc(0);
  }
  return bytes;
});

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(4002),
  // every core (issue #19): HTTP worker processes sharing PORT (node:cluster); default one per
  // core; 1 under Deno, which has no node:cluster (app/cluster/primary.ts)
  WORKERS: z.coerce.number().int().min(1).max(256).optional(),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z.string().url().optional(),
  // reads from a streaming replica (issue #19): replay, analytics, fleet-at-instant, the feed and
  // the console's history pages; writes and read-your-own-write reads stay on the primary
  REPLICA_DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  EMBEDDED_PG_PORT: z.coerce.number().int().min(1).max(65535).default(54329),
  BODY_LIMIT_KB: z.coerce.number().int().min(1).max(10_240).default(256),
  DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  PARTITION_DAYS_AHEAD: z.coerce.number().int().min(1).max(366).default(7),
  // retention (issue #6): day partitions older than RETENTION_DAYS are dropped (0 keeps everything),
  // archived first to ARCHIVE_DIR as gzip NDJSON when it is set
  RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(90),
  ARCHIVE_DIR: z.string().min(1).optional(),
  LOG_REQUESTS: bool.default('true'),
  // memory (issue #19): V8 lets the old generation grow to (1 + HEAP_GROWING_PERCENT/100) times
  // what the last full collection kept before collecting again (0: V8's own factor, up to 4x)
  HEAP_GROWING_PERCENT: z.coerce.number().int().min(0).max(1000).default(60),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').max(512).regex(
    /^[\x21-\x7e]+$/,
    'must be printable ASCII without spaces',
  ).optional(),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  // lifecycle sweepers (issue #5): an open reconciliation fails after RECONCILIATION_TIMEOUT,
  // a device without an authenticated call for CONNECTIVITY_TIMEOUT is lost; checked every SWEEP_INTERVAL
  RECONCILIATION_TIMEOUT: duration(1000).default('30m'),
  CONNECTIVITY_TIMEOUT: duration(1000).default('15m'),
  SWEEP_INTERVAL: duration(100).default('30s'),
  // real time (issue #4): built-in listeners, the device_summary projection and webhook delivery
  REALTIME_JOBS: bool.default('true'),
  LISTENER_POLL_MS: z.coerce.number().int().min(50).max(600_000).default(1000),
  WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(8),
  WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(1000),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  // replay (issue #3): a snapshot every SNAPSHOT_EVERY events per device (0 = none), written in the
  // background every SNAPSHOT_INTERVAL
  SNAPSHOT_EVERY: z.coerce.number().int().min(0).max(1_000_000).default(500),
  SNAPSHOT_INTERVAL: duration(100).default('5s'),
  // abuse limits and deadlines (issue #8): per-device state reports, per-provisioning-key
  // registration attempts (429 with Retry-After), and a 503 for a request not answered in time
  REPORT_RATE_LIMIT: rateLimit.default('60/10s'),
  REGISTER_RATE_LIMIT: rateLimit.default('1200/1m'),
  REQUEST_TIMEOUT: duration(100).default('30s'),
  // live streams (issue #16): SSE streams open at once, in all and per credential (503 / 429
  // with Retry-After beyond), and how often a stream's credential is re-checked
  SSE_MAX_STREAMS: z.coerce.number().int().min(1).max(100_000).default(200),
  SSE_MAX_STREAMS_PER_TOKEN: z.coerce.number().int().min(1).max(100_000).default(20),
  SSE_CREDENTIAL_RECHECK: duration(100).default('5s'),
  // slow clients (issue #16): the request head must arrive within HTTP_HEADERS_TIMEOUT and the
  // whole request (head and body) within HTTP_BODY_TIMEOUT; at most HTTP_MAX_CONNECTIONS sockets
  HTTP_HEADERS_TIMEOUT: duration(1000).default('10s'),
  HTTP_BODY_TIMEOUT: duration(1000).default('30s'),
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(1_000_000).default(20_000),
  // lifecycle events per device (issue #16, finding 3): POST /device/events counts events, not requests
  DEVICE_EVENTS_RATE_LIMIT: rateLimit.default('300/1m'),
  // the admin console (issue #17): how long a sign-in lasts, and whether its cookie is Secure
  // on every request ('always', behind a TLS-terminating proxy) or on HTTPS requests only ('auto')
  CONSOLE_SESSION_TTL: duration(60_000).default('8h'),
  CONSOLE_SECURE_COOKIE: z.enum(['auto', 'always']).default('auto'),
  // devices over MQTT (issue #18): an embedded broker on MQTT_PORT (MQTT_HOST, default HOST), or
  // the external Mosquitto at MQTT_URL managed through its dynamic-security plugin as
  // MQTT_ADMIN_USERNAME; MQTT_PUBLIC_URL is the broker devices are told; MQTT=off: no MQTT
  MQTT: z.enum(['on', 'off', 'true', 'false', '1', '0']).transform((v) => ['on', 'true', '1'].includes(v)).default(
    'on',
  ),
  MQTT_PORT: z.coerce.number().int().min(0).max(65535).default(1884),
  MQTT_HOST: z.string().min(1).optional(),
  MQTT_URL: z.string().url().regex(/^mqtts?:\/\//, 'must be an mqtt:// or mqtts:// URL').optional(),
  MQTT_PUBLIC_URL: z.string().url().regex(/^(mqtts?|wss?):\/\//, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
    .optional(),
  MQTT_ADMIN_USERNAME: z.string().min(1).max(256).optional(),
  MQTT_ADMIN_PASSWORD: z.string().min(1).max(1024).optional(),
  MQTT_CLIENT_ID: z.string().regex(/^[\w.-]{1,60}$/, 'must be 1-60 letters, digits, _ . -').optional(),
  MQTT_SUBSCRIBERS: z.coerce.number().int().min(1).max(64).default(4),
  // webhooks (issue #16, finding 7): deliveries reach public addresses only, unless this allows
  // loopback, private, link-local and other non-global ones (checked at creation and per attempt)
  WEBHOOK_ALLOW_PRIVATE: bool.default('false'),
  // telemetry and device logs (issue #15): kept apart from the event log, each table's day
  // partitions dropped after its own retention (0 keeps everything); log uploads are held to
  // their own decoded body size and a per-device budget of lines (429 with Retry-After beyond)
  METRICS_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(30),
  LOGS_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(14),
  LOGS_BODY_LIMIT_KB: z.coerce.number().int().min(1).max(102_400).default(1024),
  LOGS_RATE_LIMIT: rateLimit.default('6000/1m'),
  // secrets (issue #15): environment values and secret config keys are hashed with this key
  // before anything is stored in the log; unset, a key is generated once in DATA_DIR/secrets-key
  SECRETS_KEY: secretsKey.optional(),
  // online key guessing (issue #16, finding 8): failed authentications per client address and
  // per key prefix (its first 8 characters) in a sliding window; beyond, 429 with Retry-After
  // before any key is looked at. Stored credential hashes are HMAC-SHA-256 keyed with
  // CREDENTIAL_PEPPER, else with DATA_DIR/credential-pepper (generated once, 0600)
  AUTH_FAILURE_LIMIT_PER_ADDRESS: rateLimit.default('60/1m'),
  AUTH_FAILURE_LIMIT_PER_KEY_PREFIX: rateLimit.default('20/1m'),
  CREDENTIAL_PEPPER: z.string().min(MIN_PEPPER_LENGTH, `must be at least ${MIN_PEPPER_LENGTH} characters`).max(1024)
    .optional(),
  // X-Request-Id (issue #16, finding 12): kept as sent only from these peer addresses (comma
  // separated; a proxy that sets it); from anyone else it gets a unique suffix
  TRUSTED_PROXIES: z.string().transform((text, ctx) => {
    const addresses = text.split(',').map((a) => a.trim()).filter((a) => a !== '');
    const bad = addresses.filter((a) => isIP(a) === 0);
    if (bad.length > 0) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `must be IP addresses, comma separated; not ${bad.join(', ')}`,
      });
    }
    return addresses;
  }).default(''),
});

/** Validated configuration (WORKERS resolved to its default when unset). */
export type Config = Omit<z.infer<typeof schema>, 'WORKERS'> & { WORKERS: number };

/** Thrown when a variable is invalid; names the variable and the problem. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Reads and validates the environment. Empty strings count as unset. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(present);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const workers = result.data.WORKERS ?? defaultWorkers();
  if (isDeno && workers > 1) {
    throw new ConfigError(
      `invalid configuration: WORKERS: must be 1 under Deno (it has no node:cluster), got ${workers}`,
    );
  }
  return { ...result.data, WORKERS: workers };
}

/**
 * This process's place in a cluster (app/cluster/primary.ts sets DEVICETRAIL_WORKER when it
 * forks a worker): the worker's index from 1, or null for the process `npm start` started.
 * Not a setting: the primary chooses it.
 */
export function workerIndex(env: Record<string, string | undefined> = process.env): number | null {
  const text = env['DEVICETRAIL_WORKER'];
  if (text === undefined || !/^[1-9]\d{0,2}$/.test(text)) return null;
  return Number(text);
}
