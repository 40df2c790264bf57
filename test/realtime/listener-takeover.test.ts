// Two processes with the same listener name: one holds the lock and processes, the other
// stands by; kill the first and the second takes over, skipping nothing.
import test from 'ava';
import { sql } from 'slonik';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type ChildListener, createSeenTable, distinctSeen, seenRows, spawnListener } from './child-listener.ts';
import { allEventIds, append, preparePartitions, waitFor } from './realtime-helpers.ts';

let db: TestDatabase;
const children: ChildListener[] = [];
test.before(async () => {
  db = await createTestDatabase();
  await preparePartitions(db.pool);
  await createSeenTable(db.pool);
});
test.after.always(async () => {
  for (const c of children) await c.kill('SIGKILL');
  await db?.drop();
});

test('one process per listener name; when it dies the other takes over', async (t) => {
  const a = spawnListener(db.url, 'takeover');
  children.push(a);
  await a.waitForStatus('leader');
  const b = spawnListener(db.url, 'takeover');
  children.push(b);
  await b.waitForStatus('standby');

  for (let i = 0; i < 20; i += 1) await append(db.pool, `device-${i % 5}`, 10);
  await waitFor('A to handle the first 200 events', async () => (await distinctSeen(db.pool)) === 200);
  t.deepEqual(new Set((await seenRows(db.pool)).map((r) => r.pid)), new Set([a.pid]), 'only the lock holder processed');
  t.false(b.statuses.includes('leader'));

  await a.kill('SIGKILL');
  const killedAt = Date.now();
  for (let i = 0; i < 20; i += 1) await append(db.pool, `device-${i % 5}`, 10);
  await b.waitForStatus('leader');
  t.log(`B took over ${Date.now() - killedAt} ms after A was killed`);
  const ids = await allEventIds(db.pool);
  await waitFor('B to handle the rest', async () => (await distinctSeen(db.pool)) === ids.length)
    .catch(async (error: unknown) => {
      t.log(b.stderr.join(''));
      const seen = new Set((await seenRows(db.pool)).map((r) => r.event_id));
      const missing = ids.filter((id) => !seen.has(id));
      t.log(
        JSON.stringify(
          await db.pool.any(
            sql
              .unsafe`SELECT event_id, transaction_id::text, global_position, aggregate_id, aggregate_version FROM events WHERE event_id = ANY(${
              sql.array(missing, 'uuid')
            }) ORDER BY transaction_id, global_position LIMIT 5`,
          ),
        ),
      );
      t.log(
        missing.length,
        JSON.stringify(await db.pool.any(sql.unsafe`SELECT * , transaction_id::text AS t FROM listener_checkpoints`)),
      );
      throw error;
    });
  await b.kill('SIGTERM');

  const rows = await seenRows(db.pool);
  t.deepEqual([...new Set(rows.map((r) => r.event_id))].sort(), [...ids].sort());
  t.true(rows.filter((r) => r.pid === b.pid).length >= 200);
  t.is(rows.filter((r) => r.pid !== a.pid && r.pid !== b.pid).length, 0);
});
