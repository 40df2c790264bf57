// The log's guarantees, enforced by PostgreSQL: immutability, per-stream versions,
// partitions on demand, and the seed's get_aggregate_events.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { ConcurrencyError, createEventStore } from '../../infra/event-store/event-store.ts';
import { GENESIS_HASH } from '../../infra/event-store/event-hash.ts';
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
    store.append(tx, 'thing', 'a', { version: 0, last_hash: GENESIS_HASH }, [
      event('x', '2026-11-20T10:00:00Z'),
      event('y', '2026-11-20T10:00:01Z'),
    ])
  );
  t.deepEqual(first.map((e) => e.aggregate_version), [1, 2]);
  t.not(first[0]!.hash, first[1]!.hash);
  const head = await store.head(db.pool, 'thing', 'a');
  t.deepEqual(head, { version: 2, last_hash: first[1]!.hash });
  await t.throwsAsync(
    db.pool.transaction((tx) =>
      store.append(tx, 'thing', 'a', { version: 1, last_hash: first[0]!.hash }, [event('z', '2026-11-20T10:00:02Z')])
    ),
    { instanceOf: ConcurrencyError },
  );
  await t.throwsAsync(
    db.pool.transaction((tx) =>
      store.append(tx, 'thing', 'a', { version: 0, last_hash: GENESIS_HASH }, [event('z', '2026-11-20T10:00:02Z')])
    ),
    { instanceOf: ConcurrencyError },
  );
  const all = await store.readStream('thing', 'a');
  t.deepEqual(all.map((e) => e.event_type), ['x', 'y']);
});

test.serial('UPDATE, DELETE and TRUNCATE on events are refused by the database, also on a partition', async (t) => {
  const store = createEventStore(db.pool);
  await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'b', { version: 0, last_hash: GENESIS_HASH }, [event('x', '2026-11-21T10:00:00Z')])
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
    store.append(tx, 'thing', 'c', { version: 0, last_hash: GENESIS_HASH }, [
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
    store.append(tx, 'thing', 'd', { version: 0, last_hash: GENESIS_HASH }, [event('x', '2026-11-23T10:00:00Z')])
  );
  await t.throwsAsync(
    db.pool.transaction((tx) =>
      store.append(tx, 'thing', 'd', { version: 0, last_hash: GENESIS_HASH }, [event('y', '2032-02-02T10:00:00Z')])
    ),
    { instanceOf: ConcurrencyError },
  );
  const stored = await db.pool.transaction((tx) =>
    store.append(tx, 'thing', 'e', { version: 0, last_hash: GENESIS_HASH }, [event('z', '2032-02-02T11:00:00Z')])
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
