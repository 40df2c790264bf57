// 8 concurrent writers append 10,000 events, with random delays inside their transactions,
// while a listener runs: it sees every event id exactly once, each aggregate in version order.
import { setTimeout as delay } from 'node:timers/promises';
import test from 'ava';
import { ConcurrencyError } from '../../infra/event-store/event-store.ts';
import { EventListener } from '../../infra/realtime/event-listener.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { allEventIds, appendTo, memoryLog, preparePartitions, waitFor } from './realtime-helpers.ts';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase({ poolSize: 14 });
  await preparePartitions(db.pool);
});
test.after.always(async () => {
  await db?.drop();
});

const TOTAL = 10_000;
const WRITERS = 8;

test('8 writers, 10,000 events, random delays in transactions: the listener sees each event exactly once, in version order', async (t) => {
  const seen = new Map<string, number>();
  const versions = new Map<string, number[]>();
  const { lines, log } = memoryLog();
  const listener = new EventListener({ name: 'concurrency', pool: db.pool, pollIntervalMs: 200, batchSize: 200, log });
  listener.onAny((event) => {
    seen.set(event.event_id, (seen.get(event.event_id) ?? 0) + 1);
    const list = versions.get(event.aggregate_id) ?? [];
    list.push(event.aggregate_version);
    versions.set(event.aggregate_id, list);
  });
  await listener.start();

  let claimed = 0;
  let conflicts = 0;
  const started = Date.now();
  await Promise.all(Array.from({ length: WRITERS }, async (_, writer) => {
    for (;;) {
      const count = Math.min(TOTAL - claimed, 1 + Math.floor(Math.random() * 3));
      if (count <= 0) return;
      claimed += count;
      // a few shared aggregates, so appends also conflict and retry
      const aggregate = Math.random() < 0.2
        ? `shared-${Math.floor(Math.random() * 4)}`
        : `writer-${writer}-${Math.floor(Math.random() * 10)}`;
      for (;;) {
        try {
          await db.pool.transaction(async (tx) => {
            await delay(Math.random() * 3);
            await appendTo(tx, db.pool, aggregate, count);
            await delay(Math.random() * 3);
          });
          break;
        } catch (error) {
          if (!(error instanceof ConcurrencyError)) throw error;
          conflicts += 1;
        }
      }
    }
  }));
  const written = Date.now() - started;
  const ids = await allEventIds(db.pool);
  t.is(ids.length, TOTAL);
  await waitFor('the listener to see every event', () => seen.size >= TOTAL, 120_000);
  await waitFor('the listener to be caught up', async () => (await listener.lag()).events_behind === 0, 120_000);
  await listener.stop();
  t.log(
    `written in ${written} ms with ${conflicts} version conflicts retried; listened to all within ${
      Date.now() - started
    } ms`,
  );

  t.deepEqual([...seen.keys()].sort(), [...ids].sort(), 'every event id');
  t.deepEqual([...seen.values()].filter((n) => n !== 1), [], 'each exactly once');
  for (const [aggregate, list] of versions) {
    t.deepEqual(list, list.map((_, i) => i + 1), `${aggregate} in version order`);
  }
  t.false(lines.some((l) => l.startsWith('error')), lines.join('\n'));

  // a listener started afterwards catches up over the whole backlog in full batches
  const late = new Map<string, number>();
  const lateVersions = new Map<string, number[]>();
  const catchUp = new EventListener({ name: 'concurrency-late', pool: db.pool, batchSize: 97, log });
  catchUp.onAny((event) => {
    late.set(event.event_id, (late.get(event.event_id) ?? 0) + 1);
    lateVersions.set(event.aggregate_id, [...(lateVersions.get(event.aggregate_id) ?? []), event.aggregate_version]);
  });
  await catchUp.start();
  await waitFor('the late listener to catch up', async () => (await catchUp.lag()).events_behind === 0, 120_000);
  await catchUp.stop();
  t.deepEqual([...late.keys()].sort(), [...ids].sort());
  t.deepEqual([...late.values()].filter((n) => n !== 1), []);
  for (const [aggregate, list] of lateVersions) {
    t.deepEqual(
      list,
      list.map((_, i) => i + 1),
      `${aggregate} in version order (catch-up)`,
    );
  }
});
