// Telemetry reads for admins (issue #15), outside the event log:
//   GET /api/v1/devices/:uuid/metrics?since=&until=&step=   — the metrics series, downsampled
//   GET /api/v1/devices/:uuid/logs?since=&until=&service=&level=&q=&limit=&after=&order=  — log lines, paged
//   GET /api/v1/devices/:uuid/logs/stream?service=&level=&q=  — new log lines as Server-Sent Events
import { once } from 'node:events';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';
import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { formatDuration, parseDuration } from '../../../domain/replay/time.ts';
import {
  decodeLogCursor,
  encodeLogCursor,
  LOG_LEVELS,
  type LogLine,
  readDeviceLogs,
  readLogTail,
  type TailCursor,
  tailStart,
} from '../../../infra/telemetry/device-logs.ts';
import { latestMetrics, readMetricsSeries } from '../../../infra/telemetry/metrics-series.ts';
import { adminSecretValid, callerOf, credentialOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { createLiveStreams, type LiveStream, startEventStream } from '../live-streams.ts';
import { instantSchema, intQuery, uuidParam } from '../request.ts';
import { processShutdown } from '../../shutdown.ts';

/** Most buckets one metrics read returns. */
export const MAX_METRICS_POINTS = 1_000;
const DEFAULT_METRICS_WINDOW_MS = 24 * 3_600_000;
const DEFAULT_LOGS_WINDOW_MS = 24 * 3_600_000;
/** The steps a metrics read picks from when none is given: the finest with at most 300 buckets. */
const STEPS = ['10s', '30s', '1m', '5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '7d'];

const step = z.string().max(32).refine((s) => {
  const ms = parseDuration(s);
  return ms !== null && ms >= 1000;
}, 'must be a duration of at least 1s, such as 30s, 5m, 1h or 1d');

/** Query of GET /devices/:uuid/metrics. */
export const metricsQuery = z.object({
  since: instantSchema.optional(),
  until: instantSchema.optional(),
  step: step.optional(),
}).strict();

const filters = {
  service: z.string().min(1).max(128).optional(),
  level: z.enum(LOG_LEVELS).optional(),
  q: z.string().min(1).max(256).optional(),
};

/** Query of GET /devices/:uuid/logs. */
export const logsQuery = z.object({
  since: instantSchema.optional(),
  until: instantSchema.optional(),
  ...filters,
  limit: intQuery(1, 1000).default(100),
  after: z.string().min(1).max(200).optional(),
  order: z.enum(['asc', 'desc']).default('asc'),
}).strict();

/** Query of GET /devices/:uuid/logs/stream. */
export const logStreamQuery = z.object(filters).strict();

/** A window from the query: `until` defaults to now, `since` to `defaultMs` before it; since must come first. */
function windowOf(query: { since?: string | undefined; until?: string | undefined }, now: Date, defaultMs: number) {
  const until = query.until ?? now.toISOString();
  const since = query.since ?? new Date(Date.parse(until) - defaultMs).toISOString();
  if (Date.parse(since) >= Date.parse(until)) {
    throw new HttpError(400, 'invalid_request', 'query.since: must be before until');
  }
  return { since, until };
}

async function knownDevice(deps: AppDeps, uuid: string): Promise<void> {
  if ((await deps.devices.get(uuid)) === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
}

/** How often an open log stream looks for new lines, and the most lines one look sends. */
const TAIL_POLL_MS = 1000;
const TAIL_BATCH = 500;
const STREAM_HEARTBEAT_MS = 15_000;

/** A tail cursor as an SSE id (`<transaction id>.<line id>`), and back; null when it is not one. */
const tailId = (cursor: TailCursor) => `${cursor.transactionId}.${cursor.id}`;
function parseTailId(text: string): TailCursor | null {
  const match = /^(\d{1,20})\.(\d{1,15})$/.exec(text);
  if (match === null || BigInt(match[1]!) >= 2n ** 64n) return null;
  return { transactionId: match[1]!, id: Number(match[2]) };
}

/** Whether a line passes a stream's filters (the same as the paged read's). */
function passes(line: LogLine, filter: z.infer<typeof logStreamQuery>): boolean {
  if (filter.service !== undefined && line.service_name !== filter.service) return false;
  if (filter.level !== undefined && LOG_LEVELS.indexOf(line.level as never) < LOG_LEVELS.indexOf(filter.level)) {
    return false;
  }
  return filter.q === undefined || line.message.toLowerCase().includes(filter.q.toLowerCase());
}

/**
 * Follows one device's new lines until the client goes, the process drains, the credential
 * is revoked (a last `event: error` says so) or a read fails: a look every TAIL_POLL_MS, each
 * line one message whose id is the cursor after it (Last-Event-ID resumes there).
 */
async function tail(
  deps: AppDeps,
  stream: ServerResponse,
  uuid: string,
  start: TailCursor,
  filter: z.infer<typeof logStreamQuery>,
  slot: LiveStream,
  signal: AbortSignal,
): Promise<void> {
  let lastWrite = Date.now();
  const write = async (text: string) => {
    lastWrite = Date.now();
    if (!stream.write(text)) await once(stream, 'drain', { signal });
  };
  const heartbeat = setInterval(() => {
    if (Date.now() - lastWrite >= STREAM_HEARTBEAT_MS) void write(': keepalive\n\n').catch(() => undefined);
  }, STREAM_HEARTBEAT_MS / 3);
  let cursor = start;
  try {
    await write('retry: 3000\n: connected\n\n');
    while (!signal.aborted && !processShutdown.draining) {
      const read = await readLogTail(deps.pool, uuid, cursor, TAIL_BATCH);
      cursor = read.cursor;
      const messages = read.lines.filter((line) => passes(line, filter)).map((line) =>
        `data: ${JSON.stringify(line)}\n\n`
      );
      if (read.lines.length > 0) {
        // the batch's last message carries the cursor; with none left by the filters, an id alone
        // (no event for the client, but Last-Event-ID moves past the lines it dropped)
        const id = `id: ${tailId(cursor)}\n`;
        const last = messages.pop();
        await write(`${messages.join('')}${id}${last ?? '\n'}`);
      }
      if (read.lines.length < TAIL_BATCH) await pause(TAIL_POLL_MS, signal);
    }
  } catch (error) {
    if (!signal.aborted) deps.logError('log stream stopped', error);
  } finally {
    clearInterval(heartbeat);
    slot.close();
    const ended = slot.ended;
    if (ended !== null && !stream.destroyed) {
      stream.write(`event: error\ndata: ${JSON.stringify({ error: ended })}\n\n`);
    }
    stream.end();
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Registers the telemetry reads on the admin router (its guard authenticates). */
export function telemetryRoutes(router: Router, deps: AppDeps): void {
  router.get('/devices/:uuid/metrics', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(metricsQuery, ctx.query, 'query');
    const { since, until } = windowOf(query, deps.clock(), DEFAULT_METRICS_WINDOW_MS);
    const spanMs = Date.parse(until) - Date.parse(since);
    const stepText = query.step ??
      STEPS.find((s) => Math.floor(spanMs / parseDuration(s)!) + 1 <= 300) ?? STEPS[STEPS.length - 1]!;
    const stepMs = parseDuration(stepText)!;
    const buckets = Math.floor(spanMs / stepMs) + 1;
    if (buckets > MAX_METRICS_POINTS) {
      throw new HttpError(
        400,
        'invalid_request',
        `query.step: ${stepText} makes ${buckets} buckets over ${
          formatDuration(spanMs)
        }; at most ${MAX_METRICS_POINTS}`,
      );
    }
    await knownDevice(deps, uuid);
    const [points, latest] = await Promise.all([
      readMetricsSeries(deps.pool, uuid, { since, until, stepMs }),
      latestMetrics(deps.pool, uuid, until),
    ]);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { uuid, since, until, step: stepText, step_ms: stepMs, points, latest };
  });

  router.get('/devices/:uuid/logs', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(logsQuery, ctx.query, 'query');
    const { since, until } = windowOf(query, deps.clock(), DEFAULT_LOGS_WINDOW_MS);
    const after = query.after === undefined ? undefined : decodeLogCursor(query.after);
    if (after === null) throw new HttpError(400, 'invalid_request', 'query.after: not a cursor returned by this API');
    await knownDevice(deps, uuid);
    const page = await readDeviceLogs(deps.pool, uuid, { ...query, since, until, after });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      uuid,
      since,
      until,
      logs: page.lines,
      next_cursor: page.next === null ? null : encodeLogCursor(page.next),
    };
  });

  // log streams have their own slots, with the same caps as event streams (SSE_MAX_STREAMS…)
  const liveStreams = createLiveStreams(
    deps.liveStreams,
    (id, secret) => adminSecretValid(deps, id, secret),
    (message, error) => deps.logError(message, error),
  );

  router.get('/devices/:uuid/logs/stream', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const uuid = uuidParam(ctx);
    const filter = parseOr400(logStreamQuery, ctx.query, 'query');
    const lastEventId = ctx.get('Last-Event-ID');
    const resumed = lastEventId === '' ? undefined : parseTailId(lastEventId);
    if (resumed === null) {
      throw new HttpError(400, 'invalid_request', 'Last-Event-ID header: not an id this stream gave out');
    }
    await knownDevice(deps, uuid);
    const start = resumed ?? await tailStart(deps.pool);
    // answered meanwhile (REQUEST_TIMEOUT's 503), or the client left: no stream to start
    if (ctx.res.headersSent || ctx.req.socket.destroyed) return;
    const slot = liveStreams.open(admin.id, credentialOf(ctx).secret);
    const signal = startEventStream(ctx, slot);
    void tail(deps, ctx.res, uuid, start, filter, slot, signal);
  });
}
