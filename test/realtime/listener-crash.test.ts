// A listener process killed with SIGKILL in the middle of a stream, then started again:
// every event is handled, none skipped (some handled twice: delivery is at-least-once).
import test from 'ava';
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

test('SIGKILL mid-stream, then a restart: every event is handled, none skipped', async (t) => {
  for (let i = 0; i < 100; i += 1) await append(db.pool, `device-${i % 20}`, 20);
  const first = spawnListener(db.url, 'crash', { HANDLER_DELAY_MS: '2' });
  children.push(first);
  await waitFor('the first process to be mid-stream', async () => (await distinctSeen(db.pool)) >= 300);
  await first.kill('SIGKILL');
  const beforeRestart = await distinctSeen(db.pool);
  t.true(beforeRestart < 2000, `killed mid-stream (${beforeRestart} of 2000 handled)`);

  const second = spawnListener(db.url, 'crash');
  children.push(second);
  // more events arrive while the restarted listener catches up
  for (let i = 0; i < 50; i += 1) await append(db.pool, `device-${i % 7}`, 10);
  const ids = await allEventIds(db.pool);
  t.is(ids.length, 2500);
  await waitFor('every event to be handled', async () => (await distinctSeen(db.pool)) === ids.length);
  await second.kill('SIGTERM');

  const rows = await seenRows(db.pool);
  t.deepEqual([...new Set(rows.map((r) => r.event_id))].sort(), [...ids].sort(), 'every event id handled');
  const duplicates = rows.length - ids.length;
  t.log(`handled before the kill: ${beforeRestart}; handled twice after the restart: ${duplicates}`);
  // the checkpoint is written after each batch of 50: at most that batch is handed out again
  t.true(duplicates <= 50, `at most one batch redelivered, got ${duplicates}`);
  t.true(rows.filter((r) => r.pid === second.pid).length >= ids.length - beforeRestart);
});
