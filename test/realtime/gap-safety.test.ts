// The gap-safe rule with real concurrent transactions (two and three connections): a
// transaction that commits late is delivered, never skipped; a long one holds readers back;
// each aggregate's events come out in version order even when transaction ids disagree.
import test from 'ava';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { readFeedBatch, START_CURSOR } from '../../infra/realtime/feed.ts';
import { EventListener } from '../../infra/realtime/event-listener.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  append,
  appendTo,
  deferred,
  memoryLog,
  preparePartitions,
  waitFor,
  waitForHorizon,
} from './realtime-helpers.ts';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase();
  await preparePartitions(db.pool);
});
test.after.always(async () => {
  await db?.drop();
});

const xid = (t: CommonQueryMethods) =>
  t.oneFirst(sql.type(z.object({ x: z.string() }))`SELECT pg_current_xact_id()::text AS x`);

test.serial('a transaction that starts first and commits last is delivered, after the one that committed first', async (t) => {
  const seen: StoredEvent[] = [];
  const { log } = memoryLog();
  const listener = new EventListener({ name: 'gap-two-connections', pool: db.pool, pollIntervalMs: 50, log });
  listener.onAny((event) => {
    seen.push(event);
  });
  await listener.start();

  const t1Began = deferred();
  const t2HasXid = deferred();
  const t1Inserted = deferred<StoredEvent>();
  const t1MayCommit = deferred();
  // T1 begins first, but T2 gets its transaction id first; T1 then takes the lower
  // global_position, and commits last.
  const t1 = db.pool.transaction(async (tx) => {
    await tx.query(sql.unsafe`SELECT 1`);
    t1Began.resolve();
    await t2HasXid.promise;
    const [e1] = await appendTo(tx, db.pool, 'late');
    t1Inserted.resolve(e1!);
    await t1MayCommit.promise;
    return e1!;
  });
  await t1Began.promise;
  const e2 = await db.pool.transaction(async (tx) => {
    const x2 = await xid(tx);
    t2HasXid.resolve();
    const e1 = await t1Inserted.promise;
    const [event] = await appendTo(tx, db.pool, 'early');
    t.true(BigInt(x2) < BigInt(e1.transaction_id), 'T2 has the older transaction id');
    t.true(
      event!.global_position > e1.global_position,
      'T1 holds the lower position: a position-only reader would skip it',
    );
    return event!;
  });

  await waitFor('the early commit to be delivered', () => seen.some((e) => e.event_id === e2.event_id));
  // a reader that followed global_position alone is already past T1's event
  const naiveCheckpoint = Math.max(...seen.map((e) => e.global_position));
  t.false(seen.some((e) => e.aggregate_id === 'late'));

  t1MayCommit.resolve();
  const e1 = await t1;
  t.true(e1.global_position < naiveCheckpoint);
  await waitFor('the late commit to be delivered', () => seen.some((e) => e.event_id === e1.event_id));
  await listener.stop();
  t.deepEqual(seen.map((e) => e.event_id), [e2.event_id, e1.event_id]);
});

test.serial('an open transaction holds the feed back at the horizon; nothing behind it is skipped', async (t) => {
  const mark = await readFeedBatch(db.pool, START_CURSOR, { limit: 1000 });
  const longBegan = deferred<StoredEvent>();
  const longMayCommit = deferred();
  const long = db.pool.transaction(async (tx) => {
    const [event] = await appendTo(tx, db.pool, 'long');
    longBegan.resolve(event!);
    await longMayCommit.promise;
    return event!;
  });
  const first = await longBegan.promise;
  const [later] = await append(db.pool, 'quick');
  t.true(BigInt(later!.transaction_id) > BigInt(first.transaction_id));

  const held = await readFeedBatch(db.pool, mark.cursor, { limit: 1000 });
  t.deepEqual(held.items, [], 'the committed event waits behind the open transaction');
  t.true(held.heldBack);

  longMayCommit.resolve();
  await long;
  await waitForHorizon(db.pool);
  const released = await readFeedBatch(db.pool, held.cursor, { limit: 1000 });
  t.deepEqual(released.items.map((i) => i.event.event_id), [first.event_id, later!.event_id]);
});

test.serial('an aggregate whose later version has the older transaction id is still delivered in version order, once', async (t) => {
  const seen: StoredEvent[] = [];
  const listener = new EventListener({
    name: 'gap-version-order',
    pool: db.pool,
    pollIntervalMs: 50,
    log: memoryLog().log,
  });
  listener.onAny((event) => {
    seen.push(event);
  });
  await listener.start();
  await waitFor('the listener to catch up', async () => (await listener.lag()).events_behind === 0);
  seen.length = 0;

  const aHasXid = deferred();
  const bCommitted = deferred();
  const cHasXid = deferred();
  const cMayCommit = deferred();
  // A takes its id first; C (an unrelated transaction) next and stays open; B appends
  // version 1 of "device-x" and commits; A appends version 2 and commits. Under C's
  // horizon only A's version 2 is readable: version 1 must be pulled ahead of it.
  const a = db.pool.transaction(async (tx) => {
    await xid(tx);
    aHasXid.resolve();
    await bCommitted.promise;
    return (await appendTo(tx, db.pool, 'device-x'))[0]!;
  });
  await aHasXid.promise;
  const c = db.pool.transaction(async (tx) => {
    await xid(tx);
    cHasXid.resolve();
    await cMayCommit.promise;
    return (await appendTo(tx, db.pool, 'unrelated'))[0]!;
  });
  await cHasXid.promise;
  const [v1] = await append(db.pool, 'device-x');
  bCommitted.resolve();
  const v2 = await a;
  t.is(v1!.aggregate_version, 1);
  t.is(v2.aggregate_version, 2);
  t.true(BigInt(v2.transaction_id) < BigInt(v1!.transaction_id));

  await waitFor('both versions to be delivered while C is open', () => seen.length >= 2);
  t.deepEqual(seen.map((e) => e.aggregate_version), [1, 2]);
  cMayCommit.resolve();
  const e3 = await c;
  await waitFor('the last transaction to be delivered', () => seen.some((e) => e.event_id === e3.event_id));
  const [tail] = await append(db.pool, 'after');
  await waitFor('a later event', () => seen.some((e) => e.event_id === tail!.event_id));
  await listener.stop();
  t.deepEqual(
    seen.map((e) => e.event_id),
    [v1!.event_id, v2.event_id, e3.event_id, tail!.event_id],
    'version 1 is not delivered again when the horizon passes it',
  );
});
