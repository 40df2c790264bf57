// How much of the log one feed read touches. A listener or projection reads a page after its
// cursor many times a second under load: the read must touch about the page, not the day
// partition. This pins that amount for every kind of filter, whatever plan PostgreSQL picks.
// (It does not reproduce the plan the ingest benchmark hit before the filters were written
// `IS TRUE` and "held back" stopped using EXISTS: the aggregate index chosen for a type
// filter, 71,483 rows a read. That choice came from statistics of a partition growing under
// load, and with fresh statistics here PostgreSQL picks the feed index either way.)
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { type FeedCursor, type FeedFilter, feedPageQuery } from '../../infra/realtime/feed.ts';
import { createPartitionCache } from '../../infra/event-store/partitions.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const EVENTS = 20_000;
const DEVICES = 200;
const DAY = '2026-05-04T00:00:00.000Z';
let db: TestDatabase;
let cursor: FeedCursor;

test.before(async () => {
  db = await createTestDatabase();
  await createPartitionCache().ensure(db.pool, [DAY]);
  // one day's reports of 200 devices, in 20 transactions (plain rows: only the plan matters here)
  for (let from = 0; from < EVENTS; from += 1_000) {
    await db.pool.query(sql.unsafe`
      INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
      SELECT gen_random_uuid(), CASE WHEN i % 10 = 0 THEN 'container.started' ELSE 'current_state.updated' END, 'device',
             'feed-plan-' || (i % ${DEVICES}), i / ${DEVICES} + 1, '{}'::jsonb, '{}'::jsonb,
             ${DAY}::timestamptz + i * interval '1 second', 'api', 'x'
        FROM generate_series(${from + 1}::int, ${from + 1_000}::int) AS i`);
  }
  await db.pool.query(sql.unsafe`ANALYZE events`);
  // a cursor 300 events before the end of the log
  const row = await db.pool.one(sql.type(z.object({ transaction_id: z.string(), global_position: z.number() }))`
    SELECT transaction_id::text AS transaction_id, global_position FROM events
     ORDER BY transaction_id, global_position OFFSET ${EVENTS - 300} LIMIT 1`);
  cursor = { transactionId: row.transaction_id, position: row.global_position, ahead: [] };
});

test.after.always(async () => {
  await db?.drop();
});

type PlanNode = {
  'Node Type': string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
};

/** Rows the scans of a plan produced or threw away: what the statement read from the table. */
function rowsRead(node: PlanNode): number {
  const own = /Scan/.test(node['Node Type'])
    ? (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1) + (node['Rows Removed by Filter'] ?? 0) +
      (node['Rows Removed by Index Recheck'] ?? 0)
    : 0;
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsRead(child), 0);
}

const filters: [string, FeedFilter][] = [
  ['no filter', {}],
  ['aggregate type', { aggregateType: 'device' }],
  ['event types', { types: ['current_state.updated', 'container.started'] }],
  ['type prefixes', { typePrefixes: ['current_state.'] }],
  ['one device', { aggregateType: 'device', aggregateId: 'feed-plan-7' }],
];

for (const [name, filter] of filters) {
  test(`a page read (${name}) touches about the page, not the ${EVENTS.toLocaleString('en-US')}-event partition`, async (t) => {
    const plan = await db.pool.oneFirst(sql.type(z.object({ 'QUERY PLAN': z.unknown() }))`
      EXPLAIN (ANALYZE, FORMAT JSON) ${feedPageQuery(cursor, 500, filter)}`);
    const root = (plan as { Plan: PlanNode }[])[0]!.Plan;
    const read = rowsRead(root);
    t.log(`${read} rows read`);
    t.true(read <= 1_500, `${read} rows read for a page after a cursor 300 events from the end`);
  });
}
