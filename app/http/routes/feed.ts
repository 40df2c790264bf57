// The global event feed for admins, gap-safe (infra/realtime/feed.ts):
//   GET /api/v1/events?after=<cursor>&type=&aggregate_type=&aggregate_id=&limit=  — pages
//   GET /api/v1/events/stream (same filters)  — Server-Sent Events; each message's id is the
//     cursor after it, so a client that reconnects with Last-Event-ID misses nothing.
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import type { StoredEvent } from '../../../domain/recorded-event.ts';
import {
  decodeCursor,
  encodeCursor,
  type FeedCursor,
  feedEventJson,
  type FeedFilter,
  type FeedItem,
  readFeedBatch,
  START_CURSOR,
} from '../../../infra/realtime/feed.ts';
import { createFeedHub } from '../../../infra/realtime/feed-hub.ts';
import { adminSecretValid, callerOf, credentialOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { createLiveStreams, type LiveStream, startEventStream } from '../live-streams.ts';
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

/** SSE text for a batch; an event's JSON and a shared cursor's id are built once for all streams. */
function sseFormatter() {
  const data = new WeakMap<StoredEvent, string>();
  const ids = new WeakMap<FeedCursor, string>();
  const cached = <K extends object>(map: WeakMap<K, string>, key: K, make: (key: K) => string) => {
    let text = map.get(key);
    if (text === undefined) {
      text = make(key);
      map.set(key, text);
    }
    return text;
  };
  return (items: readonly FeedItem[]) =>
    items.map((item) =>
      `id: ${cached(ids, item.cursor, encodeCursor)}\ndata: ${
        cached(data, item.event, (e) => JSON.stringify(feedEventJson(e)))
      }\n\n`
    ).join('');
}

/**
 * Writes `items` to an SSE stream until the client goes, the process drains, the stream's
 * credential is found revoked (then an `event: error` message says so), or a read fails.
 */
async function serve(
  stream: ServerResponse,
  items: AsyncGenerator<FeedItem[]>,
  slot: LiveStream,
  format: (items: readonly FeedItem[]) => string,
  signal: AbortSignal,
  onError: (error: unknown) => void,
): Promise<void> {
  let lastWrite = Date.now();
  const write = async (text: string) => {
    lastWrite = Date.now();
    if (!stream.write(text)) await once(stream, 'drain', { signal });
  };
  // a heartbeat between two whole messages: each message is written by one write() call
  const heartbeat = setInterval(() => {
    if (Date.now() - lastWrite >= STREAM_HEARTBEAT_MS) void write(': keepalive\n\n').catch(() => undefined);
  }, STREAM_HEARTBEAT_MS / 3);
  try {
    await write('retry: 3000\n: connected\n\n');
    for await (const batch of items) await write(format(batch));
  } catch (error) {
    if (!signal.aborted) onError(error);
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

/** Registers the feed endpoints on the admin router (its guard authenticates). */
export function feedRoutes(router: Router, deps: AppDeps): void {
  router.get('/events', async (ctx: Context) => {
    const query = parseOr400(feedQuery, ctx.query, 'query');
    const cursor = query.after === undefined ? START_CURSOR : cursorOr400(query.after, 'query.after');
    const filter = toFilter(query);
    // on the replica when there is one: its horizon holds back what the replica has not seen committed
    const batch = await readFeedBatch(deps.readPool, cursor, { limit: query.limit, ...(filter ? { filter } : {}) });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      events: batch.items.map((item) => feedEventJson(item.event)),
      next_cursor: encodeCursor(batch.cursor),
      has_more: batch.full,
    };
  });

  // one reader of the feed for every stream of this app (issue #16), and their caps
  const hub = createFeedHub(deps.readPool, {
    draining: () => processShutdown.draining,
    onError: (message, error) => deps.logError(message, error),
  });
  const liveStreams = createLiveStreams(
    deps.liveStreams,
    // a console session's streams count as its admin token's, and end with the session
    (id, secret) => adminSecretValid(deps, id, secret),
    (message, error) => deps.logError(message, error),
  );
  const format = sseFormatter();

  router.get('/events/stream', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const query = parseOr400(streamQuery, ctx.query, 'query');
    const lastEventId = ctx.get('Last-Event-ID');
    const filter = toFilter(query);
    // the start is fixed before the answer: what commits once the client has it is streamed
    const cursor = lastEventId !== ''
      ? cursorOr400(lastEventId, 'Last-Event-ID header')
      : query.after !== undefined
      ? cursorOr400(query.after, 'query.after')
      : await hub.start();
    // answered meanwhile (REQUEST_TIMEOUT's 503), or the client left: no stream to start
    if (ctx.res.headersSent || ctx.req.socket.destroyed) return;
    const slot = liveStreams.open(admin.id, credentialOf(ctx).secret);
    const signal = startEventStream(ctx, slot);
    void serve(
      ctx.res,
      hub.follow(cursor, filter, signal),
      slot,
      format,
      signal,
      (error) => deps.logError('event stream stopped', error),
    );
  });
}
