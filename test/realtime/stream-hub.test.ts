// Issue #16, finding 5: every SSE stream of a process is served by one shared reader of the
// feed (fan-out in memory), each stream keeping its own cursor, filters and gap-free resume;
// streams are capped per credential (429) and in all (503), with Retry-After.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { encodeCursor, type FeedCursor, type FeedItem, readFeedBatch } from '../../infra/realtime/feed.ts';
import { createFeedHub, cursorCovers, cursorHolds, cursorUnion } from '../../infra/realtime/feed-hub.ts';
import { append, appendTo, blockLogScans, preparePartitions, waitFor, waitForHorizon } from './realtime-helpers.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { eventsOf, type SseClient, startStreamApp } from './stream-helpers.ts';

let app: Awaited<ReturnType<typeof startStreamApp>>;
test.before(async () => {
  // re-checks far apart: this file counts the app's queries
  app = await startStreamApp({ maxStreams: 60, maxStreamsPerToken: 40, recheckMs: 600_000 });
  await preparePartitions(app.db.pool);
});
test.after.always(async () => {
  await app?.close();
});

type Event = { event_id: string; event_type: string; aggregate_id: string; aggregate_version: number };

const feedOrder = () =>
  app.db.pool.any(sql.type(z.object({ event_id: z.string(), event_type: z.string(), aggregate_id: z.string() }))`
    SELECT event_id, event_type, aggregate_id FROM events ORDER BY transaction_id, global_position`);

/** Every event a stream received: none twice, each aggregate's in version order. */
function checkStream(t: { true: (v: boolean, m?: string) => void }, name: string, events: Event[]) {
  t.true(new Set(events.map((e) => e.event_id)).size === events.length, `${name}: an event twice`);
  const versions = new Map<string, number>();
  for (const e of events) {
    const previous = versions.get(e.aggregate_id) ?? 0;
    t.true(e.aggregate_version > previous, `${name}: ${e.aggregate_id} v${e.aggregate_version} after v${previous}`);
    versions.set(e.aggregate_id, e.aggregate_version);
  }
}

const connected = (clients: SseClient[]) =>
  waitFor('the streams to connect', () => clients.every((c) => c.comments.includes(': connected')));

test.serial('40 streams are served by one reader: the queries do not grow with the streams', async (t) => {
  const { token } = await app.token('many');
  const all = Array.from({ length: 30 }, () => app.stream('/api/v1/events/stream', token));
  const typed = Array.from({ length: 5 }, () => app.stream('/api/v1/events/stream?type=test.even', token));
  const one = Array.from({ length: 5 }, () => app.stream('/api/v1/events/stream?aggregate_id=hub-a', token));
  await connected([...all, ...typed, ...one]);
  const [marker] = await append(app.db.pool, 'marker', 1, { type: 'test.marker' });
  await waitFor(
    'the marker on every unfiltered stream',
    () => all.every((s) => eventsOf(s).some((e) => e.event_id === marker!.event_id)),
  );

  const before = app.queries();
  const written: StoredEvent[] = [];
  for (let i = 0; i < 20; i += 1) {
    // one event per transaction, each waited for: every one is a NOTIFY that wakes the readers
    const [event] = await append(app.db.pool, i % 2 === 0 ? 'hub-a' : 'hub-b', 1, {
      type: i % 4 === 0 ? 'test.even' : 'test.odd',
    });
    written.push(event!);
    await waitFor(
      'the event on every unfiltered stream',
      () => all.every((s) => eventsOf(s).some((e) => e.event_id === event!.event_id)),
    );
  }
  const queries = app.queries() - before;
  // one reader: a read or two per event (a stream per reader made it 40 per event)
  t.true(queries <= 5 * written.length, `${queries} queries for ${written.length} events and 40 streams`);

  const ids = (events: StoredEvent[]) => events.map((e) => e.event_id);
  await waitFor(
    'the filtered streams',
    () => typed.every((s) => eventsOf(s).length === 5) && one.every((s) => eventsOf(s).length === 10),
  );
  for (const s of all) t.deepEqual(eventsOf(s).map((e) => e.event_id), [marker!.event_id, ...ids(written)]);
  for (const s of typed) t.deepEqual(eventsOf(s).map((e) => e.event_id), ids(written.filter((_, i) => i % 4 === 0)));
  for (const s of one) t.deepEqual(eventsOf(s).map((e) => e.event_id), ids(written.filter((_, i) => i % 2 === 0)));
  for (const s of [...all, ...typed, ...one]) await s.close();
  t.deepEqual(app.errors, []);
});

test.serial('streams from older cursors catch up, join the shared reader and miss nothing under concurrent writes', async (t) => {
  const { token } = await app.token('resume');
  const head = app.stream('/api/v1/events/stream', token);
  await connected([head]);
  const history = await feedOrder();
  const page = await readFeedBatch(app.db.pool, { transactionId: '0', position: 0, ahead: [] }, {
    limit: Math.max(1, history.length - 5),
  });
  const middle = encodeCursor(page.cursor);

  // writers: concurrent transactions on several aggregates, so commits and sequence order differ
  const writing = (async () => {
    for (let round = 0; round < 15; round += 1) {
      await Promise.all(['w-1', 'w-2', 'w-3'].map((id, i) =>
        app.db.pool.transaction(async (tx) => {
          await appendTo(tx, app.db.pool, id, 1 + (round % 2), { type: i === 0 ? 'test.even' : 'test.odd' });
          if (round % 3 === i) await new Promise((r) => setTimeout(r, 15));
        })
      ));
    }
  })();
  const fromMiddle = app.stream(`/api/v1/events/stream?after=${middle}`, token);
  const fromStart = app.stream('/api/v1/events/stream?type=test.even', token, {
    'Last-Event-ID': encodeCursor({ transactionId: '0', position: 0, ahead: [] }),
  });
  const oneAggregate = app.stream('/api/v1/events/stream?aggregate_id=w-2', token, { 'Last-Event-ID': middle });
  // a stream that resumes twice while the writers run
  const firstLeg = app.stream('/api/v1/events/stream', token, { 'Last-Event-ID': middle });
  await waitFor('a few events on the first leg', () => eventsOf(firstLeg).length >= 8);
  await firstLeg.close();
  const secondLeg = app.stream('/api/v1/events/stream', token, {
    'Last-Event-ID': firstLeg.messages[firstLeg.messages.length - 1]!.id,
  });
  await writing;
  await waitForHorizon(app.db.pool);
  const [last] = await append(app.db.pool, 'w-1', 1, { type: 'test.even' });
  await waitForHorizon(app.db.pool);

  const log = await feedOrder();
  const newer = log.slice(log.findIndex((e) => e.event_id === history[history.length - 1]!.event_id) + 1);
  const afterMiddle = log.filter((e) => !page.items.some((i) => i.event.event_id === e.event_id));
  const expect = async (client: SseClient, wanted: typeof log, name: string) => {
    await waitFor(`${name}: every event`, () => eventsOf(client).length >= wanted.length);
    const got = eventsOf(client) as Event[];
    checkStream(t, name, got);
    t.deepEqual(got.map((e) => e.event_id).sort(), wanted.map((e) => e.event_id).sort(), name);
  };
  await expect(head, newer, 'head');
  await expect(fromMiddle, afterMiddle, 'after=middle');
  await expect(fromStart, log.filter((e) => e.event_type === 'test.even'), 'type=test.even from the start');
  await expect(oneAggregate, afterMiddle.filter((e) => e.aggregate_id === 'w-2'), 'aggregate w-2 after middle');
  await waitFor('the second leg', () => eventsOf(secondLeg).some((e) => e.event_id === last!.event_id));
  const legs = [...eventsOf(firstLeg), ...eventsOf(secondLeg)] as Event[];
  checkStream(t, 'two legs', legs);
  t.deepEqual(legs.map((e) => e.event_id).sort(), afterMiddle.map((e) => e.event_id).sort(), 'two legs');
  for (const s of [head, fromMiddle, fromStart, oneAggregate, secondLeg]) await s.close();
  t.deepEqual(app.errors, []);
});

/** Waits until a stream of `token` is taken again (its credential's slot was freed). */
function slotFreed(app: Awaited<ReturnType<typeof startStreamApp>>, token: string, timeoutMs: number): Promise<void> {
  return waitFor('the slot to be freed', async () => {
    const retry = app.stream('/api/v1/events/stream', token);
    if ((await retry.ready).status === 200) return true;
    await retry.close();
    return false;
  }, timeoutMs);
}

test.serial('beyond its cap a credential gets 429, beyond the total 503, both with Retry-After; a closed stream frees its slot', async (t) => {
  const capped = await startStreamApp({ maxStreams: 3, maxStreamsPerToken: 2, recheckMs: 600_000 });
  try {
    const a = await capped.token('a');
    const b = await capped.token('b');
    const a1 = capped.stream('/api/v1/events/stream', a.token);
    const a2 = capped.stream('/api/v1/events/stream?type=test.even', a.token);
    t.is((await a1.ready).status, 200);
    t.is((await a2.ready).status, 200);
    const a3 = await capped.stream('/api/v1/events/stream', a.token).refusal;
    t.is(a3?.status, 429);
    t.truthy(a3?.headers.get('retry-after'));
    t.like(a3?.body, { error: { code: 'too_many_streams', details: { limit: 'SSE_MAX_STREAMS_PER_TOKEN', max: 2 } } });
    t.regex((a3?.body as { error: { message: string } }).error.message, /^SSE_MAX_STREAMS_PER_TOKEN/);

    const b1 = capped.stream('/api/v1/events/stream', b.token);
    t.is((await b1.ready).status, 200);
    const b2 = await capped.stream('/api/v1/events/stream', b.token).refusal;
    t.is(b2?.status, 503);
    t.truthy(b2?.headers.get('retry-after'));
    t.like(b2?.body, { error: { code: 'too_many_streams', details: { limit: 'SSE_MAX_STREAMS', max: 3 } } });

    // a refused request takes no slot, and a bad one is refused for what it is
    t.is((await capped.stream('/api/v1/events/stream?type=BAD', a.token).refusal)?.status, 400);
    await a1.close();
    await slotFreed(capped, a.token, 5000);
    t.deepEqual(capped.errors, []);
  } finally {
    await capped.close();
  }
});

test.serial('a client that leaves while its stream is being started frees its slot', async (t) => {
  const capped = await startStreamApp({ maxStreams: 3, maxStreamsPerToken: 1, recheckMs: 600_000 });
  const block = await blockLogScans(capped.db.pool);
  try {
    const a = await capped.token('a');
    const gone = capped.stream('/api/v1/events/stream', a.token);
    await waitFor("the stream's start to wait for the lock", block.waiting);
    await gone.close();
    await delay(300); // the server sees the socket close while the handler still waits
    await block.release();
    // its 'close' came before the stream was set up: the slot must be freed all the same
    await slotFreed(capped, a.token, 10_000);
    t.deepEqual(capped.errors, []);
  } finally {
    await block.release();
    await capped.close();
  }
});

test.serial('a subscriber that stops reading falls back to its own reads and then rejoins, missing nothing; the others are not held', async (t) => {
  const hub = createFeedHub(app.db.pool, { inboxLimit: 3, pollMs: 200 });
  const stop = new AbortController();
  const slow = hub.follow(await hub.start(), undefined, stop.signal);
  const fast = hub.follow(await hub.start(), undefined, stop.signal);
  const fastItems: FeedItem[] = [];
  const slowItems: FeedItem[] = [];
  const first = slow.next();
  const reading = (async () => {
    for await (const batch of fast) fastItems.push(...batch);
  })();
  await waitFor('both live', () => hub.stats().live === 2);
  const written: StoredEvent[] = [...await append(app.db.pool, 'slow-1', 1)];
  slowItems.push(...((await first).value as FeedItem[]));
  for (let i = 0; i < 12; i += 1) written.push(...await append(app.db.pool, `slow-${i % 3}`, 1));
  await waitFor('the fast subscriber to have everything', () => fastItems.length === written.length);
  t.is(hub.stats().live, 1, 'the slow one was dropped from the shared reader');
  const catchUpsBefore = hub.stats().catchUpReads;
  while (slowItems.length < written.length) slowItems.push(...((await slow.next()).value as FeedItem[]));
  t.true(hub.stats().catchUpReads > catchUpsBefore, 'it read for itself');
  const next = slow.next();
  await waitFor('the slow one live again', () => hub.stats().live === 2);
  written.push(...await append(app.db.pool, 'slow-1', 1));
  slowItems.push(...((await next).value as FeedItem[]));
  await waitFor('the fast subscriber', () => fastItems.length === written.length);
  t.deepEqual(slowItems.map((i) => i.event.event_id), written.map((e) => e.event_id));
  t.deepEqual(fastItems.map((i) => i.event.event_id), written.map((e) => e.event_id));
  // each item's cursor is a resume point: a feed read from it starts with the next item
  const resume = await readFeedBatch(app.db.pool, slowItems[4]!.cursor, { limit: 100 });
  t.deepEqual(resume.items.map((i) => i.event.event_id), written.slice(5).map((e) => e.event_id));
  stop.abort();
  await slow.return(undefined);
  await reading;
  t.is(hub.stats().subscribers, 0);
});

test('cursor algebra: holds, covers, union', (t) => {
  const c = (transactionId: string, position: number, ahead: [string, number][] = []): FeedCursor => ({
    transactionId,
    position,
    ahead,
  });
  const a = c('100', 5, [['105', 9]]);
  t.true(cursorHolds(a, ['100', 5]));
  t.true(cursorHolds(a, ['99', 50]));
  t.true(cursorHolds(a, ['105', 9]));
  t.false(cursorHolds(a, ['100', 6]));
  t.true(cursorCovers(c('105', 9), a));
  t.false(cursorCovers(c('104', 1), a));
  t.true(cursorCovers(c('104', 1, [['105', 9]]), a));
  t.false(cursorCovers(a, c('101', 0)));
  t.deepEqual(cursorUnion(a, c('102', 0, [['103', 4], ['106', 1]])), c('102', 0, [['103', 4], ['106', 1], ['105', 9]]));
  t.deepEqual(cursorUnion(c('200', 1), a), c('200', 1));
});
