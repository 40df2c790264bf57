// The log's guarantees, enforced by PostgreSQL: immutability, per-stream versions,
// partitions on demand, and the seed's get_aggregate_events.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import {
  ConcurrencyError,
  createEventStore,
  newStreamHead,
  prepareEvents,
} from '../../infra/event-store/event-store.ts';
import { eventHash, GENESIS_HASH } from '../../infra/event-store/event-hash.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase();
});
test.after.always(async () => {
  await db?.drop();
});

const meta = { actor: { type: 'system' as const, id: 'test' } };
const event = (type: string, timestamp: string, data: Record<string, unknown> = {}) => ({
  event_type: type,
  data,
  metadata: meta,
  timestamp,
  source: 'test',
});

test.serial('append assigns versions 1, 2, 3… and chains hashes; a stale expected version is refused', async (t) => {
  const store = createEventStore(db.pool);
  const first = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'a', newStreamHead(), [
      event('x', '2026-11-20T10:00:00Z'),
      event('y', '2026-11-20T10:00:01Z'),
    ])
  );
  t.deepEqual(first.map((e) => e.aggregate_version), [1, 2]);
  t.not(first[0]!.hash, first[1]!.hash);
  const head = await store.head(db.pool, 'thing', 'a');
  t.deepEqual(head, { version: 2, last_hash: first[1]!.hash, last_timestamp: '2026-11-20T10:00:01.000Z' });
  await t.throwsAsync(
    db.pool.transaction((tx) =>
      store.append(tx, 'thing', 'a', { version: 1, last_hash: first[0]!.hash, last_timestamp: first[0]!.timestamp }, [
        event('z', '2026-11-20T10:00:02Z'),
      ])
    ),
    { instanceOf: ConcurrencyError },
  );
  await t.throwsAsync(
    db.pool.transaction((tx) => store.append(tx, 'thing', 'a', newStreamHead(), [event('z', '2026-11-20T10:00:02Z')])),
    { instanceOf: ConcurrencyError },
  );
  const all = await store.readStream('thing', 'a');
  t.deepEqual(all.map((e) => e.event_type), ['x', 'y']);
});

test.serial('UPDATE, DELETE and TRUNCATE on events are refused by the database, also on a partition', async (t) => {
  const store = createEventStore(db.pool);
  await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'b', newStreamHead(), [event('x', '2026-11-21T10:00:00Z')])
  );
  const count = () => db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`);
  const before = await count();
  await t.throwsAsync(db.pool.query(sql.unsafe`UPDATE events SET data = '{"forged": true}'`), { message: /immutable/ });
  await t.throwsAsync(db.pool.query(sql.unsafe`DELETE FROM events`), { message: /immutable/ });
  await t.throwsAsync(db.pool.query(sql.unsafe`TRUNCATE events`), { message: /immutable/ });
  await t.throwsAsync(db.pool.query(sql.unsafe`DELETE FROM events_20261121`), { message: /immutable/ });
  await t.throwsAsync(db.pool.query(sql.unsafe`TRUNCATE events_20261121`), { message: /immutable/ });
  await t.throwsAsync(db.pool.query(sql.unsafe`UPDATE events_20261121 SET source = 'x'`), { message: /immutable/ });
  t.is(await count(), before);
});

test.serial('an append on a day without a partition creates it (past and far future)', async (t) => {
  const store = createEventStore(db.pool);
  const stored = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'c', newStreamHead(), [
      event('old', '2019-03-04T23:59:59.999Z'),
      event('future', '2031-01-01T00:00:00Z'),
    ])
  );
  t.is(stored.length, 2);
  const parts = await db.pool.anyFirst(sql.type(z.object({ relname: z.string() }))`
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'events'::regclass AND c.relname IN ('events_20190304', 'events_20310101') ORDER BY 1`);
  t.deepEqual(parts, ['events_20190304', 'events_20310101']);
});

test.serial('an append refused for a stale version forgets the partition its rolled-back transaction created', async (t) => {
  const store = createEventStore(db.pool);
  await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'd', newStreamHead(), [event('x', '2026-11-23T10:00:00Z')])
  );
  await t.throwsAsync(
    db.pool.transaction((tx) => store.append(tx, 'thing', 'd', newStreamHead(), [event('y', '2032-02-02T10:00:00Z')])),
    { instanceOf: ConcurrencyError },
  );
  const stored = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'e', newStreamHead(), [event('z', '2032-02-02T11:00:00Z')])
  );
  t.is(stored.length, 1);
});

test.serial('concurrent partition creation for the same day from many connections succeeds', async (t) => {
  const results = await Promise.all(
    Array.from({ length: 8 }, () =>
      db.pool.oneFirst(
        sql.type(z.object({ name: z.string() }))`SELECT ensure_events_partition('2027-05-05'::date) AS name`,
      )),
  );
  t.true(results.every((n) => n === 'events_20270505'));
});

test.serial("the seed's get_aggregate_events returns one aggregate's events in version order, with since", async (t) => {
  const store = createEventStore(db.pool);
  const head = await store.head(db.pool, 'thing', 'a');
  await db.pool.transaction((tx) => store.append(tx, 'thing', 'a', head, [event('w', '2026-11-22T10:00:00Z')]));
  const rows = await db.pool.any(sql.type(z.object({ event_type: z.string(), aggregate_version: z.number() }))`
    SELECT event_type, aggregate_version FROM get_aggregate_events('thing', 'a', NULL)`);
  t.deepEqual(rows.map((r) => r.aggregate_version), [1, 2, 3]);
  const since = await db.pool.anyFirst(sql.type(z.object({ event_type: z.string() }))`
    SELECT event_type FROM get_aggregate_events('thing', 'a', '2026-11-21T00:00:00Z')`);
  t.deepEqual(since, ['w']);
});

test.serial('events record the writing transaction id (xid8) and a global position', async (t) => {
  const rows = await db.pool.any(sql.type(z.object({ transaction_id: z.string(), global_position: z.number() }))`
    SELECT transaction_id::text AS transaction_id, global_position FROM events ORDER BY global_position`);
  t.true(rows.length > 0);
  t.true(rows.every((r) => /^\d+$/.test(r.transaction_id)));
  t.is(new Set(rows.map((r) => r.global_position)).size, rows.length);
});

test.serial("an event decided before the stream's last one is stored with that one's timestamp; the hash covers what is stored", async (t) => {
  const store = createEventStore(db.pool);
  const first = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'order', newStreamHead(), [event('x', '2026-11-24T10:00:05Z')])
  );
  const head = await store.head(db.pool, 'thing', 'order');
  t.is(head.last_timestamp, '2026-11-24T10:00:05.000Z');
  // decided with an earlier clock (a request that read it before the first one committed), and
  // going backwards inside the append too
  const stored = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'order', head, [
      event('y', '2026-11-24T10:00:01Z'),
      event('z', '2026-11-24T10:00:07Z'),
      event('w', '2026-11-24T10:00:06Z'),
    ])
  );
  t.deepEqual(stored.map((e) => e.timestamp), [
    '2026-11-24T10:00:05.000Z',
    '2026-11-24T10:00:07.000Z',
    '2026-11-24T10:00:07.000Z',
  ]);
  const read = await store.readStream('thing', 'order');
  t.deepEqual(read.map((e) => e.timestamp), ['2026-11-24T10:00:05.000Z', ...stored.map((e) => e.timestamp)]);
  let previous = GENESIS_HASH;
  for (const e of read) {
    t.is(eventHash(previous, e), e.hash, `v${e.aggregate_version}: the hash is over the stored timestamp`);
    previous = e.hash;
  }
  t.deepEqual(await store.head(db.pool, 'thing', 'order'), {
    version: 4,
    last_hash: read[3]!.hash,
    last_timestamp: '2026-11-24T10:00:07.000Z',
  });
  t.is(first[0]!.timestamp, '2026-11-24T10:00:05.000Z');
});

test.serial("the compare-and-set refuses events stamped before the stream's last one (a head read without its timestamp)", async (t) => {
  const store = createEventStore(db.pool);
  const head = await store.head(db.pool, 'thing', 'order');
  await t.throwsAsync(
    db.pool.transaction((tx) =>
      store.append(tx, 'thing', 'order', { ...head, last_timestamp: null }, [event('v', '2026-11-24T10:00:02Z')])
    ),
    { instanceOf: ConcurrencyError },
  );
  // the same head with its timestamp appends (stamped no earlier than it)
  const stored = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'order', head, [event('v', '2026-11-24T10:00:02Z')])
  );
  t.is(head.last_timestamp, stored[0]!.timestamp);
  t.deepEqual((await store.readStream('thing', 'order')).map((e) => e.aggregate_version), [1, 2, 3, 4, 5]);
});

test.serial('appendStreams stamps each stream after its own head, in one statement', async (t) => {
  const store = createEventStore(db.pool);
  await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'm1', newStreamHead(), [event('x', '2026-11-25T12:00:00Z')])
  );
  const heads = await Promise.all(['m1', 'm2'].map((id) => store.head(db.pool, 'thing', id)));
  const written = await store.appendStreams(db.pool, [
    prepareEvents('thing', 'm1', heads[0]!, [event('y', '2026-11-25T11:00:00Z')]),
    prepareEvents('thing', 'm2', heads[1]!, [event('y', '2026-11-25T11:00:00Z')]),
  ]);
  t.deepEqual(written.map((rows) => rows?.map((e) => e.timestamp)), [
    ['2026-11-25T12:00:00.000Z'],
    ['2026-11-25T11:00:00.000Z'],
  ]);
});
