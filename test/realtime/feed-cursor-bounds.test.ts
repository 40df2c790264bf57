// Issue #16, finding 9 (feed part): a cursor whose numbers are beyond their column types is a
// 400 naming the cursor, on the paged feed and on the stream, never a 500 nor a stream that
// answers 200 and then dies. The bound is the type's: xid8 is unsigned 64-bit.
import test from 'ava';
import { Buffer } from 'node:buffer';
import { decodeCursor } from '../../infra/realtime/feed.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { append, waitFor } from './realtime-helpers.ts';
import { eventsOf, openSse } from './stream-helpers.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

const cursor = (json: unknown) => Buffer.from(JSON.stringify(json)).toString('base64url');
const MAX_XID8 = '18446744073709551615';

const outOfRange = {
  'a transaction id beyond xid8': cursor({ t: '99999999999999999999', p: 0 }),
  'a transaction id of 2^64': cursor({ t: '18446744073709551616', p: 0 }),
  'an ahead entry beyond xid8': cursor({ t: '1', p: 0, a: [['99999999999999999999', 1]] }),
  'a position beyond 2^53': cursor({ t: '1', p: 1e300 }),
  'a negative position': cursor({ t: '1', p: -1 }),
};

test('cursor numbers beyond their types are not cursors; the largest xid8 is one', (t) => {
  for (const [what, text] of Object.entries(outOfRange)) t.is(decodeCursor(text), null, what);
  t.deepEqual(decodeCursor(cursor({ t: MAX_XID8, p: Number.MAX_SAFE_INTEGER })), {
    transactionId: MAX_XID8,
    position: Number.MAX_SAFE_INTEGER,
    ahead: [],
  });
});

test.serial('GET /events: an out-of-range cursor is a 400 naming query.after', async (t) => {
  for (const [what, text] of Object.entries(outOfRange)) {
    const response = await app.request('GET', `/api/v1/events?after=${text}`, { token: app.adminToken });
    t.is(response.status, 400, what);
    t.regex(response.body.error.message, /^query\.after: not a cursor/, what);
  }
  const largest = await app.request('GET', `/api/v1/events?after=${cursor({ t: MAX_XID8, p: 0 })}`, {
    token: app.adminToken,
  });
  t.is(largest.status, 200, largest.text);
  t.deepEqual(largest.body.events, []);
  t.deepEqual(app.errors, []);
});

test.serial('the stream: an out-of-range Last-Event-ID or after is a 400 before any 200', async (t) => {
  for (const [what, text] of Object.entries(outOfRange)) {
    const byHeader = await openSse(`${app.baseUrl}/api/v1/events/stream`, {
      Authorization: `Bearer ${app.adminToken}`,
      'Last-Event-ID': text,
    }).refusal;
    t.is(byHeader?.status, 400, what);
    t.regex((byHeader?.body as { error: { message: string } }).error.message, /^Last-Event-ID header: not a cursor/);
    const byQuery = await openSse(`${app.baseUrl}/api/v1/events/stream?after=${text}`, {
      Authorization: `Bearer ${app.adminToken}`,
    }).refusal;
    t.is(byQuery?.status, 400, what);
  }
  // the largest cursor is a valid one: the stream lives (and every event so far counts as read)
  const largest = openSse(`${app.baseUrl}/api/v1/events/stream`, {
    Authorization: `Bearer ${app.adminToken}`,
    'Last-Event-ID': cursor({ t: MAX_XID8, p: 0 }),
  });
  t.is((await largest.ready).status, 200);
  const control = openSse(`${app.baseUrl}/api/v1/events/stream`, { Authorization: `Bearer ${app.adminToken}` });
  await waitFor('both connected', () => largest.comments.length > 0 && control.comments.length > 0);
  const [event] = await append(app.db.pool, 'bounds', 1);
  await waitFor('the event on the control stream', () => eventsOf(control).some((e) => e.event_id === event!.event_id));
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.deepEqual(eventsOf(largest), []);
  t.is(await Promise.race([largest.ended.then(() => 'ended'), Promise.resolve('open')]), 'open');
  await largest.close();
  await control.close();
  t.deepEqual(app.errors, []);
});
