// Device log uploads (issue #15): POST /api/v1/device/:uuid/logs, the device agent's cloud log
// backend. Its body is NDJSON (`application/x-ndjson`, one line object per line, as the agent
// sends it, usually gzip-encoded) or a JSON array of the same objects. Lines go to the
// device_logs table, never to the event log. The route reads its own body (the app's JSON
// body rules skip it, see deviceLogBodies): LOGS_BODY_LIMIT_KB after decoding, lines counted
// against the device's LOGS_RATE_LIMIT (429 with Retry-After; the agent keeps its lines and
// retries with backoff). A line the agent can send is never refused for its length: an
// over-long message is cut and flagged, since a refused upload is retried forever.
import type { Context, Next } from 'koa';
import type { Router } from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import { z } from 'zod';
import { recordDeviceContact } from '../../../infra/devices/contact.ts';
import {
  createLogPartitionCache,
  insertDeviceLogs,
  LOG_LEVELS,
  type LogLevel,
  type NewLogLine,
} from '../../../infra/telemetry/device-logs.ts';
import { actorOf, callerOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { describeIssues, HttpError } from '../errors.ts';
import { droppedFields, noteIgnored, withIgnored } from '../known-fields.ts';
import { createLimiter, type RateLimit, rateLimitedError } from '../middleware/rate-limit.ts';
import { requestMetadata, uuidParam } from '../request.ts';
import { JSON_TYPES } from '../middleware/json-body.ts';

/** Most lines in one upload. */
export const MAX_LOG_LINES = 10_000;
/** Characters of a message kept; the rest is cut and the line flagged `truncated`. */
export const MAX_LOG_MESSAGE = 16_384;

const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/json-seq'];
const UPLOAD_PATH = /^\/api\/v1\/device\/[^/]+\/logs\/?$/i;

/**
 * Marks log uploads as read by their route, before the app's JSON-only check and body parser
 * run (app/http/create-app.ts mounts it first): those would refuse NDJSON and hold a JSON
 * array to BODY_LIMIT_KB.
 */
export function deviceLogBodies() {
  return async function logBodiesReadByRoute(ctx: Context, next: Next): Promise<void> {
    if (ctx.method === 'POST' && UPLOAD_PATH.test(ctx.path)) {
      (ctx as { disableBodyParser?: boolean }).disableBodyParser = true;
    }
    await next();
  };
}

const text = (max: number) => z.string().max(max).nullable().optional();

/** One line as the agent builds it (logging/types.ts LogMessage); unknown fields are dropped and named. */
export const logLineInput = z.object({
  message: z.string(),
  // the agent's Date.now(); an ISO-8601 instant is taken too
  timestamp: z.union([z.number().finite(), z.string().max(64)]).nullable().optional(),
  level: z.string().max(16).nullable().optional(),
  source: z.object({ type: text(64), name: text(256) }).nullable().optional(),
  serviceName: text(128),
  serviceId: z.number().int().min(-2_147_483_648).max(2_147_483_647).nullable().optional(),
  containerId: text(128),
  isStdErr: z.boolean().nullable().optional(),
  isSystem: z.boolean().nullable().optional(),
});

/** The body of an upload, as documented: NDJSON lines, or a JSON array of them. */
export const logUploadBody = z.array(logLineInput).max(MAX_LOG_LINES);

const LEVEL_ALIASES: Record<string, LogLevel> = {
  trace: 'debug',
  verbose: 'debug',
  notice: 'info',
  information: 'info',
  warning: 'warn',
  err: 'error',
  fatal: 'error',
  critical: 'error',
  crit: 'error',
  alert: 'error',
  emerg: 'error',
  panic: 'error',
};

/** A level the agent or a syslog-minded device sends, as one of LOG_LEVELS; null when unknown. */
export function normalLevel(level: string | null | undefined): LogLevel | null {
  if (level === null || level === undefined || level === '') return 'info';
  const lower = level.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(lower) ? lower as LogLevel : LEVEL_ALIASES[lower] ?? null;
}

const EARLIEST_MS = Date.UTC(2000, 0, 1);
const DAY_MS = 86_400_000;

/**
 * The line's time: the device's, unless it is not a plausible instant (before 2000, more than
 * a day ahead of the server: a device without a clock), then the arrival time.
 */
function lineTime(value: number | string | null | undefined, receivedMs: number): string {
  const ms = typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isFinite(ms) && ms >= EARLIEST_MS && ms <= receivedMs + DAY_MS
    ? new Date(ms).toISOString()
    : new Date(receivedMs).toISOString();
}

/** Text PostgreSQL can store: NUL and unpaired surrogates become U+FFFD (a log line is kept, not refused). */
const storable = (s: string): string => s.replaceAll('\u0000', '\uFFFD').toWellFormed();

const invalid = (message: string) => new HttpError(400, 'invalid_request', message);

/** The raw line values of a body: NDJSON text split by line (blank lines skipped), or a JSON array. */
function rawLines(body: unknown): { value: unknown; line: number }[] {
  if (typeof body === 'string') {
    const lines: { value: unknown; line: number }[] = [];
    body.split('\n').forEach((raw, i) => {
      const trimmed = raw.trim();
      if (trimmed === '') return;
      if (lines.length >= MAX_LOG_LINES) throw invalid(`body: more than ${MAX_LOG_LINES} lines`);
      try {
        lines.push({ value: JSON.parse(trimmed), line: i + 1 });
      } catch {
        throw invalid(`body line ${i + 1}: not a JSON object`);
      }
    });
    return lines;
  }
  if (!Array.isArray(body)) throw invalid('body: must be NDJSON lines or a JSON array of log lines');
  if (body.length > MAX_LOG_LINES) throw invalid(`body: more than ${MAX_LOG_LINES} lines`);
  return body.map((value, i) => ({ value, line: i + 1 }));
}

/**
 * The lines of an upload, normalised for storage, with the unknown fields dropped (named once
 * each, as `body.*.<field>`). A line whose known fields are wrong is a 400 naming its line
 * (1-based) and nothing is stored.
 */
export function parseLogUpload(body: unknown, receivedAt: string): { lines: NewLogLine[]; ignored: string[] } {
  const receivedMs = Date.parse(receivedAt);
  const ignored = new Set<string>();
  const lines = rawLines(body).map(({ value, line }) => {
    const parsed = logLineInput.safeParse(value);
    if (!parsed.success) {
      const issue = describeIssues(parsed.error.issues, `body line ${line}`)[0]!;
      throw invalid(`${issue.field}: ${issue.message}`);
    }
    for (const path of droppedFields(value, parsed.data, 'body.*')) ignored.add(path);
    const data = parsed.data;
    const level = normalLevel(data.level);
    if (level === null) {
      throw invalid(`body line ${line}.level: must be one of ${LOG_LEVELS.join(', ')} (or a common alias)`);
    }
    const message = storable(data.message);
    return {
      timestamp: lineTime(data.timestamp, receivedMs),
      level,
      source_type: data.source?.type == null ? null : storable(data.source.type),
      source_name: data.source?.name == null ? null : storable(data.source.name),
      service_name: data.serviceName == null ? null : storable(data.serviceName),
      service_id: data.serviceId ?? null,
      container_id: data.containerId == null ? null : storable(data.containerId),
      is_stderr: data.isStdErr ?? false,
      is_system: data.isSystem ?? false,
      message: message.length > MAX_LOG_MESSAGE ? message.slice(0, MAX_LOG_MESSAGE).toWellFormed() : message,
      truncated: message.length > MAX_LOG_MESSAGE,
    };
  });
  return { lines, ignored: [...ignored].sort() };
}

/** Registers the upload on the device router (its guard authenticates; `rate`: LOGS_RATE_LIMIT, lines per device). */
export function deviceLogRoutes(router: Router, deps: AppDeps, rate: RateLimit | null | undefined): void {
  const partitions = createLogPartitionCache();
  const limiter = rate ? createLimiter(rate, () => deps.clock().getTime()) : null;
  const limit = `${deps.logsBodyLimitKb}kb`;
  const readBody = bodyParser({
    enableTypes: ['json', 'text'],
    // merged index by index with the package's lists: these replace their first entries
    // (text/plain, which the route refuses anyway, and nothing of JSON's)
    extendTypes: { text: NDJSON_TYPES, json: JSON_TYPES },
    jsonLimit: limit,
    textLimit: limit,
    jsonStrict: true,
    // no onError: a parse error is thrown to the route, which names the limit on a 413
  });

  router.post('/device/:uuid/logs', async (ctx: Context) => {
    const device = callerOf(ctx, 'device');
    const uuid = uuidParam(ctx);
    if (uuid !== device.uuid) throw new HttpError(403, 'forbidden', 'a device may only upload its own logs');
    const hasBody = ctx.request.length > 0 || ctx.get('Transfer-Encoding') !== '';
    if (hasBody && !ctx.is(...NDJSON_TYPES, 'application/json', '+json')) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        `log uploads are NDJSON (Content-Type: application/x-ndjson) or a JSON array (application/json), got "${
          ctx.get('Content-Type') || 'none'
        }"`,
      );
    }
    // the app's parser skipped this request (deviceLogBodies); this one reads it, decoded, within LOGS_BODY_LIMIT_KB
    (ctx as { disableBodyParser?: boolean }).disableBodyParser = false;
    try {
      await readBody(ctx, async () => {});
    } catch (error) {
      if ((error as { status?: unknown }).status === 413) {
        throw new HttpError(
          413,
          'payload_too_large',
          `log upload larger than ${deps.logsBodyLimitKb} KiB once decoded (LOGS_BODY_LIMIT_KB); send fewer lines at a time`,
        );
      }
      throw error;
    }
    const body = hasBody ? (ctx.request as { body?: unknown }).body : '';
    const now = deps.clock().toISOString();
    const { lines, ignored } = parseLogUpload(body, now);
    noteIgnored(ctx, ignored);
    // counted in lines (one for an empty upload), like lifecycle events: 60 uploads of 100 lines weigh 6,000
    const wait = limiter === null ? 0 : limiter.take(uuid, Math.max(1, lines.length));
    if (wait > 0 && rate) throw rateLimitedError(rate, 'log lines from this device', wait);
    const row = await deps.devices.get(uuid);
    if (row === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
    // an upload is a contact like any device call; a disabled device's lines are refused after it
    await recordDeviceContact(deps.pool, deps.store, uuid, now, requestMetadata(ctx, actorOf(device)));
    if (!row.is_active) throw new HttpError(403, 'device_inactive', 'device is disabled');
    const stored = await insertDeviceLogs(deps.pool, partitions, uuid, now, lines);
    ctx.status = 201;
    ctx.body = withIgnored(ctx, { uuid, stored, truncated: lines.filter((line) => line.truncated).length });
  });
}
