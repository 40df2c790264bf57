// Issue #16, finding 4: a live SSE stream re-checks its credential and ends when the admin
// token is revoked or expires, with a last `event: error` message saying why; other
// credentials' streams go on. The registry re-checks each secret once per period, however
// many streams it has.
import test from 'ava';
import { createLiveStreams } from '../../app/http/live-streams.ts';
import { append, waitFor } from './realtime-helpers.ts';
import { eventsOf, startStreamApp } from './stream-helpers.ts';

let app: Awaited<ReturnType<typeof startStreamApp>>;
test.before(async () => {
  app = await startStreamApp({ recheckMs: 100 });
});
test.after.always(async () => {
  await app?.close();
});

test.serial('a stream ends soon after its admin token is revoked; a stream of another token goes on', async (t) => {
  const doomed = await app.token('doomed');
  const other = await app.token('other');
  const revokedStream = app.stream('/api/v1/events/stream', doomed.token);
  const otherStream = app.stream('/api/v1/events/stream', other.token);
  t.is((await revokedStream.ready).status, 200);
  t.is((await otherStream.ready).status, 200);
  await waitFor('both streams connected', () => revokedStream.comments.length > 0 && otherStream.comments.length > 0);
  const [before] = await append(app.db.pool, 'before-revoke', 1, { type: 'test.before' });
  await waitFor(
    'the event on both streams',
    () => [revokedStream, otherStream].every((s) => eventsOf(s).some((e) => e.event_id === before!.event_id)),
  );

  t.is(await app.deps.adminTokens.revoke(doomed.id), 1);
  // re-checked every 100 ms: well within 5 s (the safety net, not the figure)
  await waitFor('the revoked stream to end', async () => {
    const done = await Promise.race([
      revokedStream.ended.then(() => true),
      new Promise((r) => setTimeout(r, 20, false)),
    ]);
    return done === true;
  }, 5000);
  const last = revokedStream.messages[revokedStream.messages.length - 1]!;
  t.is(last.event, 'error');
  t.is(last.id, '', 'the error message carries no id, so Last-Event-ID stays at the last event');
  t.is(JSON.parse(last.data).error.code, 'credentials_revoked');

  const [after] = await append(app.db.pool, 'after-revoke', 1, { type: 'test.after' });
  await waitFor(
    'the event on the other stream',
    () => eventsOf(otherStream).some((e) => e.event_id === after!.event_id),
  );
  t.false(eventsOf(revokedStream).some((e) => e.event_id === after!.event_id));
  t.is((await app.stream('/api/v1/events/stream', doomed.token).refusal)?.status, 401);
  t.deepEqual(app.errors, []);
});

test.serial('a stream ends soon after its admin token expires', async (t) => {
  const brief = await app.token('brief', 1500);
  const stream = app.stream('/api/v1/events/stream', brief.token);
  t.is((await stream.ready).status, 200);
  const opened = Date.now();
  await waitFor('the stream to end', async () => {
    const done = await Promise.race([stream.ended.then(() => true), new Promise((r) => setTimeout(r, 20, false))]);
    return done === true;
  }, 6000);
  t.true(Date.now() - opened >= 1000, 'not before the token expired');
  const last = stream.messages[stream.messages.length - 1]!;
  t.is(last.event, 'error');
  t.is(JSON.parse(last.data).error.code, 'credentials_revoked');
  t.deepEqual(app.errors, []);
});

test('the registry re-checks each secret on its own and counts streams per credential', async (t) => {
  const valid = new Set(['secret-1', 'secret-2']);
  let failing = false;
  const streams = createLiveStreams(
    { maxStreams: 10, maxStreamsPerToken: 3, recheckMs: 20 },
    (id, secret) =>
      failing && secret === 'secret-3'
        ? Promise.reject(new Error('down'))
        : Promise.resolve(id === 'admin' && valid.has(secret)),
  );
  // two secrets of one admin (a token and a console session, say): one cap, separate checks
  const first = streams.open('admin', 'secret-1');
  const second = streams.open('admin', 'secret-2');
  const third = streams.open('admin', 'secret-2');
  t.throws(() => streams.open('admin', 'secret-1'), { message: /^SSE_MAX_STREAMS_PER_TOKEN/ });
  valid.delete('secret-2');
  await waitFor("the second secret's streams to end", () => second.signal.aborted && third.signal.aborted, 2000);
  t.is(second.ended?.code, 'credentials_revoked');
  t.false(first.signal.aborted);
  t.is(streams.size, 1);
  const again = streams.open('admin', 'secret-1');
  // a secret that cannot be checked ends its streams after three periods, not at once
  failing = true;
  const unverifiable = streams.open('other', 'secret-3');
  await waitFor('the unverifiable stream to end', () => unverifiable.signal.aborted, 2000);
  t.is(unverifiable.ended?.code, 'credentials_unverified');
  t.false(first.signal.aborted);
  first.close();
  first.close();
  again.close();
  t.is(streams.size, 0);
});
