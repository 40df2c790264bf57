// The live-stream suites' app (its own stream limits, and a count of the queries the app
// sends) and an SSE client that keeps every message, comment and named event.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DatabasePool } from 'slonik';
import { createApp } from '../../app/http/create-app.ts';
import { type AppDeps, createDeps } from '../../app/http/deps.ts';
import type { LiveStreamLimits } from '../../app/http/live-streams.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const QUERY_METHODS = new Set([
  'any',
  'anyFirst',
  'exists',
  'many',
  'manyFirst',
  'maybeOne',
  'maybeOneFirst',
  'one',
  'oneFirst',
  'query',
  'transaction',
]);

/** `pool`, counting the statements and transactions started through it. */
function countingPool(pool: DatabasePool): { pool: DatabasePool; count: () => number } {
  let count = 0;
  const counted = new Proxy(pool, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || !QUERY_METHODS.has(property) || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        count += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { pool: counted, count: () => count };
}

/** An app on its own database whose streams have `limits`; `db.pool` bypasses the count. */
export async function startStreamApp(limits: Partial<LiveStreamLimits> = {}) {
  const db: TestDatabase = await createTestDatabase();
  const counting = countingPool(db.pool);
  const errors: unknown[] = [];
  const deps: AppDeps = createDeps(counting.pool, {
    liveStreams: limits,
    logError: (_m, e) => {
      errors.push(e);
    },
  });
  const server: Server = createServer(createApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const streams: SseClient[] = [];
  return {
    db,
    deps,
    baseUrl,
    errors,
    /** Statements the app has sent so far. */
    queries: counting.count,
    /** A new admin token, expiring after `lifetimeMs` if given. */
    token: async (name: string, lifetimeMs?: number) =>
      deps.adminTokens.create(name, lifetimeMs === undefined ? {} : { lifetimeMs }),
    /** Opens `path` as an SSE stream with `token`. */
    stream(path: string, token: string, headers: Record<string, string> = {}): SseClient {
      const client = openSse(`${baseUrl}${path}`, { Authorization: `Bearer ${token}`, ...headers });
      streams.push(client);
      return client;
    },
    async close() {
      for (const stream of streams) await stream.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections(); // refused streams leave keep-alive sockets behind
      await closed;
      await db.drop();
    },
  };
}

/** One SSE message: `event` is '' for unnamed messages. */
export type SseMessage = { id: string; event: string; data: string };

/** An SSE client over fetch. */
export type SseClient = {
  /** The response (headers); its body is read by the client. */
  ready: Promise<Response>;
  messages: SseMessage[];
  comments: string[];
  /** Resolves when the server ended the stream (or `close` was called). */
  ended: Promise<void>;
  /** The response body when the status was not 200. */
  refusal: Promise<{ status: number; headers: Headers; body: unknown } | null>;
  close: () => Promise<void>;
};

/** Opens an SSE stream and collects what it sends. */
export function openSse(url: string, headers: Record<string, string>): SseClient {
  const controller = new AbortController();
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const ready = fetch(url, { headers: { Accept: 'text/event-stream', ...headers }, signal: controller.signal });
  // a stream the test closes before its answer arrived (a busy machine) is not a refusal, and its
  // AbortError must not be an unhandled rejection that fails the file after its tests passed
  const refusal = ready.then(
    async (response) =>
      response.status === 200
        ? null
        : { status: response.status, headers: response.headers, body: await response.json() },
    () => null,
  );
  const ended = ready.then(async (response) => {
    if (response.status !== 200 || response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: SseMessage = { id: '', event: '', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) message.id = line.slice(4);
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data += line.slice(6);
            else if (line.startsWith(':')) comments.push(line);
          }
          if (message.data !== '') messages.push(message);
        }
      }
    } catch {
      // aborted by the test
    }
  }, () => undefined);
  return {
    ready,
    messages,
    comments,
    ended,
    refusal,
    close: async () => {
      controller.abort();
      await ended;
    },
  };
}

/** The event JSON of the unnamed messages of a stream. */
export function eventsOf(client: SseClient): { event_id: string; event_type: string; aggregate_id: string }[] {
  return client.messages.filter((m) => m.event === '').map((m) => JSON.parse(m.data));
}
