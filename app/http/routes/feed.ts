// The global event feed for admins, gap-safe (infra/realtime/feed.ts):
//   GET /api/v1/events?after=<cursor>&type=&aggregate_type=&aggregate_id=&limit=  — pages
//   GET /api/v1/events/stream (same filters)  — Server-Sent Events; each message's id is the
//     cursor after it, so a client that reconnects with Last-Event-ID misses nothing.
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import type { DatabasePool } from 'slonik';
import { z } from 'zod';
import {
  decodeCursor,
  encodeCursor,
  type FeedCursor,
  feedEventJson,
  type FeedFilter,
  headCursor,
  KnownVersions,
  readFeedBatch,
  START_CURSOR,
} from '../../../infra/realtime/feed.ts';
import { eventNotifier } from '../../../infra/realtime/notifier.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { processShutdown } from '../../shutdown.ts';

const EVENT_TYPE = /^[a-z0-9_]+(\.[a-z0-9_]+)*$/;

const typeParam = z.union([z.string().max(2000), z.array(z.string().max(2000)).max(50)])
  .transform((v) =>
    (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '')
  )
  .refine((types) => types.length <= 50, 'at most 50 event types')
  .refine(
    (types) => types.every((t) => EVENT_TYPE.test(t) && t.length <= 64),
    'event types look like device.offline (lowercase, dot-separated)',
  );

const filterShape = {
  type: typeParam.optional(),
  aggregate_type: z.string().min(1).max(64).optional(),
  aggregate_id: z.string().min(1).max(200).optional(),
  after: z.string().min(1).max(200_000).optional(),
};

/** Query of GET /events. */
export const feedQuery = z.object({ ...filterShape, limit: z.coerce.number().int().min(1).max(1000).default(100) })
  .strict();

/** Query of GET /events/stream. */
export const streamQuery = z.object(filterShape).strict();

const STREAM_BATCH = 200;
const STREAM_POLL_MS = 1000;
const STREAM_HEARTBEAT_MS = 15_000;

function cursorOr400(text: string, field: string): FeedCursor {
  const cursor = decodeCursor(text);
  if (cursor === null) throw new HttpError(400, 'invalid_request', `${field}: not a cursor returned by this API`);
  return cursor;
}

function toFilter(
  query: { type?: string[] | undefined; aggregate_type?: string | undefined; aggregate_id?: string | undefined },
): FeedFilter | undefined {
  if (query.type === undefined && query.aggregate_type === undefined && query.aggregate_id === undefined) {
    return undefined;
  }
  return {
    ...(query.type === undefined || query.type.length === 0 ? {} : { types: query.type }),
    ...(query.aggregate_type === undefined ? {} : { aggregateType: query.aggregate_type }),
    ...(query.aggregate_id === undefined ? {} : { aggregateId: query.aggregate_id }),
  };
}

/** Writes the feed to an SSE stream until the client goes, the process drains, or the database fails. */
async function pump(
  stream: ServerResponse,
  pool: DatabasePool,
  start: FeedCursor,
  filter: FeedFilter | undefined,
  signal: AbortSignal,
  onError: (error: unknown) => void,
): Promise<void> {
  const notifier = eventNotifier(pool);
  let pending = false;
  let wakeUp: (() => void) | null = null;
  const unsubscribe = notifier.subscribe(() => {
    pending = true;
    wakeUp?.();
  });
  const onAbort = () => wakeUp?.();
  signal.addEventListener('abort', onAbort);
  const known = filter === undefined ? new KnownVersions(10_000) : undefined;
  const write = async (text: string) => {
    if (!stream.write(text)) await once(stream, 'drain', { signal });
  };
  let cursor = start;
  let lastWrite = Date.now();
  try {
    await write('retry: 3000\n: connected\n\n');
    while (!signal.aborted && !processShutdown.draining) {
      pending = false;
      const batch = await readFeedBatch(pool, cursor, {
        limit: STREAM_BATCH,
        ...(filter ? { filter } : {}),
        ...(known ? { known } : {}),
      });
      for (const item of batch.items) {
        await write(`id: ${encodeCursor(item.cursor)}\ndata: ${JSON.stringify(feedEventJson(item.event))}\n\n`);
      }
      cursor = batch.cursor;
      if (batch.items.length > 0) lastWrite = Date.now();
      if (batch.full) continue;
      if (Date.now() - lastWrite >= STREAM_HEARTBEAT_MS) {
        await write(': keepalive\n\n');
        lastWrite = Date.now();
      }
      notifier.ensure();
      if (pending || signal.aborted) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          wakeUp = null;
          resolve();
        }, batch.heldBack ? 100 : STREAM_POLL_MS);
        wakeUp = () => {
          clearTimeout(timer);
          wakeUp = null;
          resolve();
        };
      });
    }
  } catch (error) {
    if (!signal.aborted) onError(error);
  } finally {
    signal.removeEventListener('abort', onAbort);
    unsubscribe();
    stream.end();
  }
}

/** Registers the feed endpoints on the admin router (its guard authenticates). */
export function feedRoutes(router: Router, deps: AppDeps): void {
  router.get('/events', async (ctx: Context) => {
    const query = parseOr400(feedQuery, ctx.query, 'query');
    const cursor = query.after === undefined ? START_CURSOR : cursorOr400(query.after, 'query.after');
    const filter = toFilter(query);
    const batch = await readFeedBatch(deps.pool, cursor, { limit: query.limit, ...(filter ? { filter } : {}) });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      events: batch.items.map((item) => feedEventJson(item.event)),
      next_cursor: encodeCursor(batch.cursor),
      has_more: batch.full,
    };
  });

  router.get('/events/stream', async (ctx: Context) => {
    const query = parseOr400(streamQuery, ctx.query, 'query');
    const lastEventId = ctx.get('Last-Event-ID');
    const filter = toFilter(query);
    const cursor = lastEventId !== ''
      ? cursorOr400(lastEventId, 'Last-Event-ID header')
      : query.after !== undefined
      ? cursorOr400(query.after, 'query.after')
      : await headCursor(deps.pool);
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.req.socket.setKeepAlive(true);
    ctx.status = 200;
    ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
    ctx.set('Cache-Control', 'no-cache, no-transform');
    ctx.set('X-Accel-Buffering', 'no');
    // the stream is written by hand: a client going away is normal here, not an error for Koa to report
    ctx.respond = false;
    ctx.res.flushHeaders();
    const closed = new AbortController();
    ctx.res.once('close', () => closed.abort());
    void pump(
      ctx.res,
      deps.pool,
      cursor,
      filter,
      closed.signal,
      (error) => deps.logError('event stream stopped', error),
    );
  });
}
