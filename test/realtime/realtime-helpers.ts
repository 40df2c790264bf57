// Shared by the real-time suites: appending test events, waiting for a condition, deferreds.
import { setTimeout as delay } from 'node:timers/promises';
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { readHorizon } from '../../infra/realtime/feed.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';

/** A promise with its resolve function. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Polls `check` until it returns true; fails after `timeoutMs` (a safety net, not a speed assertion). */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** Creates today's and tomorrow's partitions, so concurrent transactions never create one. */
export async function preparePartitions(pool: DatabasePool): Promise<void> {
  await ensurePartitionsAhead(pool, new Date(), 1);
}

/**
 * Holds up every read that scans the whole log (the feed's start and pages) and nothing
 * else: an ACCESS EXCLUSIVE lock on a partition after today's, which appends to today's never
 * touch. `waiting()` says whether a statement waits for it; `release()` ends it.
 */
export async function blockLogScans(pool: DatabasePool): Promise<{
  waiting: () => Promise<boolean>;
  release: () => Promise<void>;
}> {
  await preparePartitions(pool);
  const today = `events_${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`;
  const other = await pool.oneFirst(sql.type(z.object({ name: z.string() }))`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'events'::regclass AND c.relname > ${today} ORDER BY c.relname LIMIT 1`);
  const done = deferred();
  const locked = deferred();
  const holder = pool.connect(async (connection) => {
    await connection.query(sql.unsafe`BEGIN`);
    await connection.query(sql.unsafe`LOCK TABLE ${sql.identifier([other])} IN ACCESS EXCLUSIVE MODE`);
    locked.resolve();
    await done.promise;
    await connection.query(sql.unsafe`COMMIT`);
  });
  await Promise.race([locked.promise, holder]);
  return {
    waiting: async () =>
      (await pool.oneFirst(sql.type(z.object({ n: z.number() }))`
        SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = ${other}::regclass`)) > 0,
    release: async () => {
      done.resolve();
      await holder;
    },
  };
}

const meta = { actor: { type: 'system' as const, id: 'test' } };

/** Appends `count` events of `type` to an aggregate inside `connection` (a transaction). */
export async function appendTo(
  connection: CommonQueryMethods,
  pool: DatabasePool,
  aggregateId: string,
  count = 1,
  options: { type?: string; timestamp?: string; aggregateType?: string } = {},
): Promise<StoredEvent[]> {
  const store = createEventStore(pool);
  const aggregateType = options.aggregateType ?? 'test';
  const head = await store.head(connection, aggregateType, aggregateId);
  return store.append(
    connection,
    aggregateType,
    aggregateId,
    head,
    Array.from({ length: count }, (_, i) => ({
      event_type: options.type ?? 'test.happened',
      data: { n: head.version + i + 1 },
      metadata: meta,
      timestamp: options.timestamp ?? new Date().toISOString(),
      source: 'test',
    })),
  );
}

/** Appends in its own transaction. */
export async function append(
  pool: DatabasePool,
  aggregateId: string,
  count = 1,
  options: Parameters<typeof appendTo>[4] = {},
): Promise<StoredEvent[]> {
  return pool.transaction((t) => appendTo(t, pool, aggregateId, count, options));
}

/** Every event id in the log. */
export async function allEventIds(pool: DatabasePool): Promise<string[]> {
  return [...await pool.anyFirst(sql.type(z.object({ event_id: z.string() }))`SELECT event_id FROM events`)];
}

/** A log function that keeps lines for assertions instead of printing them. */
export function memoryLog(): { lines: string[]; log: (level: string, message: string) => void } {
  const lines: string[] = [];
  return {
    lines,
    log: (level, message) => {
      lines.push(`${level}: ${message}`);
    },
  };
}

/**
 * Waits until every event committed so far is below the horizon, i.e. readable by the
 * gap-safe feed. Other test files' open transactions (the horizon is server-wide) can hold
 * it back for a moment.
 */
export async function waitForHorizon(pool: DatabasePool): Promise<void> {
  const newest = await pool.oneFirst(
    sql.type(z.object({ t: z.string().nullable() }))`SELECT max(transaction_id)::text AS t FROM events`,
  );
  if (newest === null) return;
  await waitFor('the horizon to pass the newest event', async () => BigInt(await readHorizon(pool)) > BigInt(newest));
}
