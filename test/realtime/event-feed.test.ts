// The admin feeds: GET /api/v1/events (cursor pages, filters) and GET /api/v1/events/stream
// (Server-Sent Events, live, resuming from Last-Event-ID without gaps or repeats).
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { decodeCursor, encodeCursor, START_CURSOR } from '../../infra/realtime/feed.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { allEventIds, append, blockLogScans, waitFor, waitForHorizon } from './realtime-helpers.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { Buffer } from 'node:buffer';

let app: TestApp;
const streams: { close: () => Promise<void> }[] = [];
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  // an open stream would keep the server from closing
  for (const stream of streams) await stream.close();
  await app?.close();
});

const orderedIds = () =>
  app.db.pool.anyFirst(sql.type(z.object({ event_id: z.string() }))`
  SELECT event_id FROM events ORDER BY transaction_id, global_position`);

async function activity(): Promise<{ uuid: string; key: string }> {
  const key = await app.createProvisioningKey({ fleet_id: 'fleet-feed' });
  const device = await app.registerDevice(key.key);
  await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: { A: '1' } },
  });
  await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: app.adminToken,
    body: { is_active: false },
  });
  await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: app.adminToken,
    body: { is_active: true },
  });
  return device;
}

type FeedEvent = {
  event_id: string;
  event_type: string;
  aggregate_id: string;
  aggregate_version: number;
  global_position: number;
  data: unknown;
};

test.serial('cursors are opaque strings that round-trip; anything else is not a cursor', (t) => {
  const cursor = { transactionId: '12345678901', position: 42, ahead: [['12345678905', 50]] as const };
  t.deepEqual(decodeCursor(encodeCursor(cursor)), { ...cursor, ahead: [['12345678905', 50]] });
  t.deepEqual(decodeCursor(encodeCursor(START_CURSOR)), START_CURSOR);
  for (
    const junk of [
      '',
      'abc',
      '!!!',
      Buffer.from('{"t":"x","p":1}').toString('base64url'),
      Buffer.from('{"t":"1","p":-1}').toString('base64url'),
    ]
  ) {
    t.is(decodeCursor(junk), null, junk);
  }
});

test.serial('GET /events pages through the whole log in commit-safe order, each event once', async (t) => {
  await activity();
  await activity();
  await append(app.db.pool, 'direct', 4, { type: 'test.direct' });
  await waitForHorizon(app.db.pool);
  const expected = await orderedIds();
  const got: string[] = [];
  let after: string | undefined;
  for (let page = 0; page < 100; page += 1) {
    const response = await app.request('GET', `/api/v1/events?limit=3${after === undefined ? '' : `&after=${after}`}`, {
      token: app.adminToken,
    });
    t.is(response.status, 200, response.text);
    got.push(...response.body.events.map((e: FeedEvent) => e.event_id));
    t.true(response.body.events.length <= 3);
    after = response.body.next_cursor;
    if (!response.body.has_more) break;
  }
  t.deepEqual(got, [...expected]);
  const sample = (await app.request('GET', '/api/v1/events?limit=1', { token: app.adminToken })).body.events[0];
  t.deepEqual(Object.keys(sample).sort(), [
    'aggregate_id',
    'aggregate_type',
    'aggregate_version',
    'data',
    'event_id',
    'event_type',
    'global_position',
    'metadata',
    'source',
    'timestamp',
  ]);

  const empty = await app.request('GET', `/api/v1/events?after=${after}`, { token: app.adminToken });
  t.deepEqual(empty.body.events, []);
  t.false(empty.body.has_more);
  const [next] = await append(app.db.pool, 'direct', 1, { type: 'test.direct' });
  await waitForHorizon(app.db.pool);
  const more = await app.request('GET', `/api/v1/events?after=${empty.body.next_cursor}`, { token: app.adminToken });
  t.deepEqual(more.body.events.map((e: FeedEvent) => e.event_id), [next!.event_id]);
});

test.serial('GET /events filters by type and aggregate; bad input is a 400 naming the parameter', async (t) => {
  const device = await activity();
  await waitForHorizon(app.db.pool);
  const mine = await app.request('GET', `/api/v1/events?aggregate_id=${device.uuid}`, { token: app.adminToken });
  const stream = await app.db.pool.any(sql.type(z.object({ event_type: z.string(), aggregate_version: z.number() }))`
    SELECT event_type, aggregate_version FROM events WHERE aggregate_id = ${device.uuid} ORDER BY aggregate_version`);
  t.deepEqual(
    mine.body.events.map((e: FeedEvent) => ({ event_type: e.event_type, aggregate_version: e.aggregate_version })),
    [...stream],
  );
  t.true(stream.length >= 4);
  const typed = await app.request(
    'GET',
    `/api/v1/events?aggregate_id=${device.uuid}&type=device.offline,device.online`,
    { token: app.adminToken },
  );
  t.deepEqual(typed.body.events.map((e: FeedEvent) => e.event_type), ['device.offline', 'device.online']);
  const repeated = await app.request(
    'GET',
    `/api/v1/events?aggregate_id=${device.uuid}&type=device.offline&type=device.provisioned`,
    { token: app.adminToken },
  );
  t.deepEqual(repeated.body.events.map((e: FeedEvent) => e.event_type), ['device.provisioned', 'device.offline']);
  const allOffline = await app.request('GET', '/api/v1/events?type=device.offline&limit=1000', {
    token: app.adminToken,
  });
  t.true(allOffline.body.events.length >= 3);
  t.true(allOffline.body.events.every((e: FeedEvent) => e.event_type === 'device.offline'));

  const badCursor = await app.request('GET', '/api/v1/events?after=nonsense', { token: app.adminToken });
  t.is(badCursor.status, 400);
  t.regex(badCursor.body.error.message, /^query\.after: not a cursor/);
  const badType = await app.request('GET', '/api/v1/events?type=DROP%20TABLE', { token: app.adminToken });
  t.is(badType.status, 400);
  t.regex(badType.body.error.message, /^query\.type/);
  t.is((await app.request('GET', '/api/v1/events?limit=0', { token: app.adminToken })).status, 400);
  t.is((await app.request('GET', '/api/v1/events?since=2020-01-01T00:00:00Z', { token: app.adminToken })).status, 400);
  t.is((await app.request('GET', '/api/v1/events')).status, 401);
  t.is((await app.request('GET', '/api/v1/events', { token: device.key })).status, 403);
  t.is((await app.request('GET', '/api/v1/events/stream', { token: device.key })).status, 403);
});

/** An SSE client over fetch: collects messages until closed. */
function openStream(path: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const messages: { id: string; data: FeedEvent }[] = [];
  const comments: string[] = [];
  const ready = fetch(`${app.baseUrl}${path}`, {
    headers: { Authorization: `Bearer ${app.adminToken}`, Accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const done = ready.then(async (response) => {
    if (response.status !== 200 || response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id = '';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data += line.slice(6);
            else if (line.startsWith(':')) comments.push(line);
          }
          if (data !== '') messages.push({ id, data: JSON.parse(data) as FeedEvent });
        }
      }
    } catch {
      // aborted by the test
    }
  }, () => undefined); // closed before its answer arrived (a busy machine): not an unhandled rejection
  const stream = {
    ready,
    messages,
    comments,
    close: async () => {
      controller.abort();
      await done;
    },
  };
  streams.push(stream);
  return stream;
}

test.serial('SSE: an event committed as soon as the client has its 200 is streamed (the start is taken before the answer)', async (t) => {
  // The stream's start is read from the log. Until it was taken before the answer, an event
  // committed between the answer and that read was counted as seen and never sent (CI,
  // 2026-12-06). Here that read is held up while the client may already have its answer.
  // the first stream of this file: no other keeps the hub reading, whose cursor needs no read
  t.is(streams.length, 0);
  const block = await blockLogScans(app.db.pool);
  try {
    const stream = openStream('/api/v1/events/stream');
    await waitFor('the start read to wait for the lock', block.waiting);
    const answered = await Promise.race([stream.ready.then(() => true), delay(500).then(() => false)]);
    // the answer came while the start was not read yet (the bug): what commits now must be sent
    if (!answered) {
      await block.release();
      t.is((await stream.ready).status, 200);
    }
    const [event] = await append(app.db.pool, 'after-the-answer', 1, { type: 'test.after_answer' });
    await block.release();
    await waitFor(
      'the event committed after the answer',
      () => stream.messages.some((m) => m.data.event_id === event!.event_id),
    );
    t.pass();
  } finally {
    await block.release();
  }
});

test.serial('SSE: new events arrive live; a reconnect with Last-Event-ID resumes without gaps or repeats', async (t) => {
  const before = new Set(await allEventIds(app.db.pool));
  const first = openStream('/api/v1/events/stream');
  const response = await first.ready;
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  t.is(response.headers.get('cache-control'), 'no-cache, no-transform');

  const device = await activity();
  const versions = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events WHERE aggregate_id = ${device.uuid}`,
  );
  await waitFor(
    "the device's events live",
    () => first.messages.filter((m) => m.data.aggregate_id === device.uuid).length === versions,
  );
  t.true(first.comments.includes(': connected'));
  t.deepEqual(
    first.messages.filter((m) => m.data.aggregate_id === device.uuid).map((m) => m.data.aggregate_version),
    Array.from({ length: versions }, (_, i) => i + 1),
  );
  const lastId = first.messages[first.messages.length - 1]!.id;
  await first.close();

  // while disconnected
  await activity();
  await append(app.db.pool, 'offline-gap', 3, { type: 'test.gap' });

  const second = openStream('/api/v1/events/stream', { 'Last-Event-ID': lastId });
  t.is((await second.ready).status, 200);
  const expected = (await allEventIds(app.db.pool)).filter((id) => !before.has(id));
  try {
    await waitFor('the missed events', () => first.messages.length + second.messages.length >= expected.length);
  } catch (error) {
    // failed in CI until the stream took its start before answering (the test above): should it
    // fail again, say which event is missing, where each stream was, and what holds the horizon
    const got = new Set([...first.messages, ...second.messages].map((m) => m.data.event_id));
    const events = await app.db.pool.any(sql.type(z.object({
      event_id: z.string(),
      event_type: z.string(),
      aggregate_id: z.string(),
      aggregate_version: z.number(),
      xid: z.string(),
      global_position: z.number(),
    }))`
      SELECT event_id, event_type, aggregate_id, aggregate_version, transaction_id::text AS xid, global_position
        FROM events ORDER BY transaction_id, global_position`);
    for (const event of events.filter((e) => !before.has(e.event_id))) {
      t.log(got.has(event.event_id) ? 'received' : 'MISSING ', JSON.stringify(event));
    }
    t.log('resumed from', JSON.stringify(decodeCursor(lastId)));
    t.log('first stream ids', JSON.stringify(first.messages.map((m) => m.id)));
    t.log('second stream ids', JSON.stringify(second.messages.map((m) => m.id)));
    const open = await app.db.pool.any(sql.type(z.object({ datname: z.string().nullable(), age: z.string() }))`
      SELECT datname, (now() - xact_start)::text AS age FROM pg_stat_activity
       WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 10`);
    t.log('open transactions in the cluster', JSON.stringify(open));
    throw error;
  }
  await append(app.db.pool, 'live-again', 1, { type: 'test.live' });
  await waitFor(
    'a live event after the resume',
    () => second.messages.some((m) => m.data.aggregate_id === 'live-again'),
  );
  await second.close();

  const received = [...first.messages, ...second.messages].map((m) => m.data.event_id);
  const all = (await allEventIds(app.db.pool)).filter((id) => !before.has(id));
  t.deepEqual([...received].sort(), [...all].sort(), 'every event after the first connect, none twice');
  t.is(new Set(received).size, received.length);
});

test.serial('SSE: filters apply, ?after= starts from a feed cursor, a bad Last-Event-ID is a 400', async (t) => {
  const page = await app.request('GET', '/api/v1/events?limit=1', { token: app.adminToken });
  const all = await orderedIds();
  const fromCursor = openStream(`/api/v1/events/stream?after=${page.body.next_cursor}`);
  await waitFor('the history after the cursor', () => fromCursor.messages.length === all.length - 1);
  await fromCursor.close();
  t.deepEqual(fromCursor.messages.map((m) => m.data.event_id), all.slice(1));

  const offline = openStream('/api/v1/events/stream?type=device.offline');
  t.is((await offline.ready).status, 200);
  const device = await activity();
  await waitFor('the offline event', () => offline.messages.length >= 1);
  const [marker] = await append(app.db.pool, 'after-offline', 1, { type: 'device.offline' });
  await waitFor('the marker', () => offline.messages.some((m) => m.data.event_id === marker!.event_id));
  await offline.close();
  t.deepEqual(offline.messages.map((m) => [m.data.event_type, m.data.aggregate_id]), [['device.offline', device.uuid], [
    'device.offline',
    'after-offline',
  ]]);

  const bad = await fetch(`${app.baseUrl}/api/v1/events/stream`, {
    headers: { Authorization: `Bearer ${app.adminToken}`, 'Last-Event-ID': 'garbage' },
  });
  t.is(bad.status, 400);
  t.regex(((await bad.json()) as { error: { message: string } }).error.message, /^Last-Event-ID header: not a cursor/);
  t.is((await fetch(`${app.baseUrl}/api/v1/events/stream`)).status, 401);
});
