// EventListener behaviour: handlers by type and for all, durable checkpoint across restarts,
// start from now, lag, retries with backoff, dead letters and their redelivery through
// `npm run admin -- dead-letters …`.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { EventListener } from '../../infra/realtime/event-listener.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { listDeadLetters, listenerStatuses } from '../../infra/realtime/listener-store.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { append, memoryLog, preparePartitions, waitFor } from './realtime-helpers.ts';

const run = promisify(execFile);

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase();
  await preparePartitions(db.pool);
});
test.after.always(async () => {
  await db?.drop();
});

/** Runs `npm run admin -- …` against the test database. */
async function admin(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'app/cli/admin.ts', ...args], {
      env: { ...process.env, DATABASE_URL: db.url },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test.serial('onEventType gets its type, onAny everything; the checkpoint survives a restart', async (t) => {
  await append(db.pool, 'basics', 2, { type: 'basic.one' });
  await append(db.pool, 'basics', 1, { type: 'basic.two' });
  const ones: StoredEvent[] = [];
  const all: StoredEvent[] = [];
  const make = () =>
    new EventListener({ name: 'basics', pool: db.pool, pollIntervalMs: 50, log: memoryLog().log })
      .onEventType('basic.one', (e) => {
        ones.push(e);
      })
      .onAny((e) => {
        all.push(e);
      });
  const first = make();
  await first.start();
  t.true(first.isLeader);
  await waitFor('three events', () => all.length >= 3);
  await first.stop();
  t.deepEqual(ones.map((e) => e.aggregate_version), [1, 2]);
  t.deepEqual(all.map((e) => e.event_type), ['basic.one', 'basic.one', 'basic.two']);

  await append(db.pool, 'basics', 2, { type: 'basic.one' });
  const second = make();
  await second.start();
  await waitFor('the two new events', () => all.length >= 5);
  await second.stop();
  t.deepEqual(
    all.map((e) => e.aggregate_version),
    [1, 2, 3, 4, 5],
    'resumed after the checkpoint, nothing handled twice',
  );
});

test.serial('startFrom "now" skips the history; lag counts events behind and the age of the oldest', async (t) => {
  const old = new Date(Date.now() - 3_600_000).toISOString();
  await append(db.pool, 'history', 3, { timestamp: old });
  const seen: StoredEvent[] = [];
  const fresh = new EventListener({
    name: 'from-now',
    pool: db.pool,
    startFrom: 'now',
    pollIntervalMs: 50,
    log: memoryLog().log,
  }).onAny((e) => {
    seen.push(e);
  });
  await fresh.start();
  const [next] = await append(db.pool, 'history', 1);
  await waitFor('the new event', () => seen.length >= 1);
  await fresh.stop();
  t.deepEqual(seen.map((e) => e.event_id), [next!.event_id]);

  const behind = new EventListener({ name: 'lagging', pool: db.pool, log: memoryLog().log });
  const lag = await behind.lag();
  const total = await db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`);
  t.is(lag.events_behind, total);
  t.true(lag.seconds_behind >= 3500, `the oldest unhandled event is about an hour old (${lag.seconds_behind} s)`);
  await behind.start();
  await waitFor('caught up', async () => (await behind.lag()).events_behind === 0);
  const caughtUp = await behind.lag();
  await behind.stop();
  t.deepEqual(caughtUp, { events_behind: 0, seconds_behind: 0, oldest_pending_at: null });
  const status = (await listenerStatuses(db.pool)).find((s) => s.name === 'lagging');
  t.is(status?.events_behind, 0);
  t.is(status?.events_processed, total);
});

test.serial('a failing handler is retried with backoff, then dead-lettered; the listener goes on; redelivery via the admin CLI', async (t) => {
  const [poison] = await append(db.pool, 'poison', 1, { type: 'poison.pill' });
  const [after] = await append(db.pool, 'healthy', 1, { type: 'healthy.event' });
  let failing = true;
  const attempts: number[] = [];
  const handled: string[] = [];
  const { lines, log } = memoryLog();
  const listener = new EventListener({
    name: 'dead-letters',
    pool: db.pool,
    pollIntervalMs: 50,
    maxAttempts: 3,
    retryBaseMs: 20,
    log,
  });
  listener.onEventType('poison.pill', (event) => {
    attempts.push(Date.now());
    if (failing) throw new Error(`cannot handle ${event.event_id}`);
    handled.push(event.event_id);
  });
  listener.onAny((event) => {
    if (event.event_type !== 'poison.pill') handled.push(event.event_id);
  });
  await listener.start();
  await waitFor('the healthy event after the poison', () => handled.includes(after!.event_id));
  t.is(attempts.length, 3, 'three attempts, then dead-lettered');
  // backoff 20 ms, then 40 ms (timers never fire early by more than a millisecond)
  t.true(
    attempts[1]! - attempts[0]! >= 19 && attempts[2]! - attempts[1]! >= 39,
    `the delay doubles: ${attempts[1]! - attempts[0]!} ms, ${attempts[2]! - attempts[1]!} ms`,
  );
  const [letter] = await listDeadLetters(db.pool, { listener: 'dead-letters' });
  t.is(letter?.event_id, poison!.event_id);
  t.is(letter?.status, 'dead');
  t.is(letter?.attempts, 3);
  t.regex(letter?.error ?? '', /cannot handle/);
  t.true(lines.some((l) => l.includes('dead-lettered')));

  const listed = await admin('dead-letters', 'list', '--listener', 'dead-letters');
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stdout, new RegExp(`\\b${letter!.id}\\b.*dead.*poison\\.pill`));

  failing = false;
  const redelivered = await admin('dead-letters', 'redeliver', String(letter!.id));
  t.is(redelivered.code, 0, redelivered.stderr);
  t.regex(redelivered.stdout, /1 dead letter\(s\) queued/);
  await waitFor('the redelivery', () => handled.includes(poison!.event_id));
  await waitFor(
    'the letter to be marked',
    async () => (await listDeadLetters(db.pool, { ids: [letter!.id] }))[0]?.status === 'redelivered',
  );
  await listener.stop();

  const again = await admin('dead-letters', 'redeliver', String(letter!.id));
  t.is(again.code, 1, 'nothing left to redeliver');
  const bad = await admin('dead-letters', 'redeliver');
  t.is(bad.code, 2);
  t.regex(bad.stderr, /give dead letter ids, --listener <name>, or --all/);
});

test.serial('stop() during a retry wait leaves the event for the next start instead of dead-lettering it', async (t) => {
  const [event] = await append(db.pool, 'slow', 1, { type: 'stop.during.retry' });
  let calls = 0;
  const listener = new EventListener({
    name: 'stop-in-retry',
    pool: db.pool,
    pollIntervalMs: 50,
    maxAttempts: 5,
    retryBaseMs: 60_000,
    log: memoryLog().log,
  });
  listener.onEventType('stop.during.retry', () => {
    calls += 1;
    throw new Error('not yet');
  });
  await listener.start();
  await waitFor('the first attempt', () => calls >= 1);
  await listener.stop();
  t.deepEqual(await listDeadLetters(db.pool, { listener: 'stop-in-retry' }), []);

  const seen: string[] = [];
  const next = new EventListener({ name: 'stop-in-retry', pool: db.pool, pollIntervalMs: 50, log: memoryLog().log });
  next.onEventType('stop.during.retry', (e) => {
    seen.push(e.event_id);
  });
  await next.start();
  await waitFor('the event again', () => seen.length >= 1);
  await next.stop();
  t.deepEqual(seen, [event!.event_id]);
});

test.serial('listener names are validated', (t) => {
  t.throws(() => new EventListener({ name: 'no spaces', pool: db.pool }), { message: /listener name/ });
  t.throws(() => new EventListener(), { message: /needs a database/ });
});
