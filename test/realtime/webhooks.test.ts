// Alert webhooks: registration (validated, secret shown once), signed deliveries of the
// event JSON, retries with backoff, every attempt recorded, give-up recorded, the caller's IP
// address and user agent only for webhooks that ask. Outbound HTTP is intercepted with nock;
// the receivers' host name resolves to 127.0.0.1 through a stub resolver (nothing is looked up
// outside this machine), so the app and the worker opt in to private addresses explicitly
// (WEBHOOK_ALLOW_PRIVATE=true); test/realtime/webhook-targets.test.ts covers the address policy.
import test from 'ava';
import nock from 'nock';
import { sql } from 'slonik';
import { z } from 'zod';
import { feedEventJson } from '../../infra/realtime/feed.ts';
import { storedEventRow } from '../../domain/recorded-event.ts';
import type { EventListener } from '../../infra/realtime/event-listener.ts';
import { WebhookWorker } from '../../infra/webhooks/delivery.ts';
import { createWebhookDispatcher } from '../../infra/webhooks/dispatcher.ts';
import { verifyWebhookSignature } from '../../infra/webhooks/signature.ts';
import type { WebhookAddressPolicy } from '../../infra/webhooks/address-policy.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { memoryLog, waitFor } from './realtime-helpers.ts';

let app: TestApp;
let dispatcher: EventListener;
let worker: WebhookWorker;
const { lines: workerLog, log } = memoryLog();
const HOOKS = 'http://hooks.example.test';
const privateAllowed: WebhookAddressPolicy = {
  allowPrivate: true,
  resolve: async (hostname) => {
    if (hostname !== 'hooks.example.test') throw new Error(`getaddrinfo ENOTFOUND ${hostname}`);
    return [{ address: '127.0.0.1', family: 4 }];
  },
};

test.before(async () => {
  nock.disableNetConnect();
  nock.enableNetConnect('127.0.0.1');
  app = await startTestApp({ webhookPolicy: privateAllowed });
  dispatcher = createWebhookDispatcher(app.db.pool, { pollIntervalMs: 50, log });
  worker = new WebhookWorker({
    pool: app.db.pool,
    maxAttempts: 3,
    retryBaseMs: 20,
    pollIntervalMs: 50,
    timeoutMs: 2000,
    addressPolicy: privateAllowed,
    log,
  });
  await dispatcher.start();
  await worker.start();
});
test.after.always(async () => {
  await worker?.stop();
  await dispatcher?.stop();
  await app?.close();
  nock.cleanAll();
  nock.enableNetConnect();
});

async function device(fleet = 'fleet-1') {
  const key = await app.createProvisioningKey({ fleet_id: fleet });
  const registered = await app.registerDevice(key.key);
  return registered;
}

const eventRow = (type: string, uuid: string) =>
  app.db.pool.one(sql.type(storedEventRow)`
  SELECT event_id, event_type, aggregate_type, aggregate_id, aggregate_version, global_position,
         transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash
    FROM events WHERE event_type = ${type} AND aggregate_id = ${uuid}`);

type Captured = { headers: Record<string, string | string[] | undefined>; body: unknown };

test.serial('registering: validated, the secret is returned once and never again', async (t) => {
  const noUrl = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { event_types: ['device.offline'] },
  });
  t.is(noUrl.status, 400);
  t.regex(noUrl.body.error.message, /^body\.url/);
  const typo = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/x`, event_types: ['device.ofline'] },
  });
  t.is(typo.status, 400);
  t.regex(typo.body.error.message, /^body\.event_types\.0: unknown event type "device\.ofline".*device\.offline/);
  const ftp = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: 'ftp://example.test/x', event_types: ['*'] },
  });
  t.is(ftp.status, 400);
  const shortSecret = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/x`, event_types: ['*'], secret: 'short' },
  });
  t.is(shortSecret.status, 400);
  t.regex(shortSecret.body.error.message, /^body\.secret/);
  t.is(
    (await app.request('POST', '/api/v1/webhooks', { body: { url: `${HOOKS}/x`, event_types: ['*'] } })).status,
    401,
  );
  const before = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM webhooks`,
  );
  t.is(before, 0, 'nothing written for rejected requests');

  const secret = 'test-secret-0123456789-abcdef';
  const created = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: {
      url: `${HOOKS}/registry`,
      event_types: ['device.*', 'target_state.updated'],
      secret,
      description: 'ops alerts',
    },
  });
  t.is(created.status, 201, created.text);
  t.is(created.body.secret, secret);
  t.is(created.headers.get('location'), `/api/v1/webhooks/${created.body.id}`);
  t.deepEqual(created.body.event_types, ['device.*', 'target_state.updated']);
  const generated = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/generated`, event_types: ['*'] },
  });
  t.regex(generated.body.secret, /^whsec_[\w-]{40,}$/);

  const list = await app.request('GET', '/api/v1/webhooks', { token: app.adminToken });
  t.is(list.status, 200);
  t.deepEqual(list.body.webhooks.map((w: { id: string }) => w.id), [created.body.id, generated.body.id]);
  const one = await app.request('GET', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken });
  t.is(one.body.description, 'ops alerts');
  for (const text of [list.text, one.text]) {
    t.false(text.includes(secret));
    t.false(text.includes(generated.body.secret));
    t.false(text.includes('"secret"'));
  }

  t.is((await app.request('DELETE', `/api/v1/webhooks/${generated.body.id}`, { token: app.adminToken })).status, 204);
  t.is((await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken })).status, 204);
  t.is((await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken })).status, 404);
  t.deepEqual((await app.request('GET', '/api/v1/webhooks', { token: app.adminToken })).body.webhooks, []);
  const withDeleted = await app.request('GET', '/api/v1/webhooks?include_deleted=true', { token: app.adminToken });
  t.is(withDeleted.body.webhooks.length, 2);
  t.not(withDeleted.body.webhooks[0].deleted_at, null);
  t.is((await app.request('GET', '/api/v1/webhooks/not-a-uuid', { token: app.adminToken })).status, 400);
});

test.serial('device.offline alert: the event JSON, signed; a 500 is retried and the next attempt succeeds; both attempts recorded', async (t) => {
  const secret = 'offline-alert-secret-0123456789';
  const created = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/alerts`, event_types: ['device.offline'], secret },
  });
  t.is(created.status, 201);
  const captured: Captured[] = [];
  const scope = nock(HOOKS)
    .post('/alerts').reply(function reply(_uri, body) {
      captured.push({ headers: this.req.headers, body });
      return [500, 'oops'];
    })
    .post('/alerts').reply(function reply(_uri, body) {
      captured.push({ headers: this.req.headers, body });
      return [200, 'ok'];
    });

  const { uuid } = await device();
  const off = await app.request('PATCH', `/api/v1/devices/${uuid}/active`, {
    token: app.adminToken,
    body: { is_active: false, reason: 'maintenance' },
  });
  t.is(off.status, 200);
  await waitFor('two delivery attempts', () => captured.length >= 2);
  await waitFor(
    'the success to be recorded',
    async () =>
      (await app.request('GET', `/api/v1/webhooks/${created.body.id}/deliveries`, { token: app.adminToken })).body
        .deliveries[0]?.status === 'succeeded',
  );
  t.true(scope.isDone());

  const event = await eventRow('device.offline', uuid);
  const eventJson = JSON.parse(JSON.stringify(feedEventJson(event)));
  const { ip_address: _ip, user_agent: _agent, ...metadata } = eventJson.metadata;
  t.is(_ip, '127.0.0.1', "the stored event has the caller's address");
  for (const [i, { headers, body }] of captured.entries()) {
    t.deepEqual(
      body,
      { ...eventJson, metadata },
      "the body is the event JSON, without the caller's IP address and user agent",
    );
    const raw = JSON.stringify(body);
    t.is(headers['content-type'], 'application/json');
    t.is(headers['x-devicetrail-event'], 'device.offline');
    t.is(headers['x-devicetrail-webhook'], created.body.id);
    t.is(headers['x-devicetrail-attempt'], String(i + 1));
    t.regex(String(headers['x-devicetrail-signature']), /^sha256=[0-9a-f]{64}$/);
    t.true(
      verifyWebhookSignature(
        secret,
        String(headers['x-devicetrail-timestamp']),
        raw,
        String(headers['x-devicetrail-signature']),
      ),
      'signature verifies with the secret',
    );
    t.false(
      verifyWebhookSignature(
        'another-secret-0123456789',
        String(headers['x-devicetrail-timestamp']),
        raw,
        String(headers['x-devicetrail-signature']),
      ),
    );
  }
  t.is(
    captured[0]!.headers['x-devicetrail-delivery'],
    captured[1]!.headers['x-devicetrail-delivery'],
    'one delivery id across attempts',
  );

  const deliveries =
    (await app.request('GET', `/api/v1/webhooks/${created.body.id}/deliveries`, { token: app.adminToken })).body
      .deliveries;
  t.is(deliveries.length, 1, 'only device.offline is delivered to this webhook');
  const [delivery] = deliveries;
  t.is(delivery.id, captured[0]!.headers['x-devicetrail-delivery']);
  t.like(delivery, {
    event_id: event.event_id,
    event_type: 'device.offline',
    status: 'succeeded',
    attempts: 2,
    last_status_code: 200,
    last_error: null,
    next_attempt_at: null,
  });
  t.like(delivery.attempt_log[0], { attempt: 1, status_code: 500, error: 'HTTP 500', response_body: 'oops' });
  t.like(delivery.attempt_log[1], { attempt: 2, status_code: 200, error: null, response_body: 'ok' });
  t.false(workerLog.some((l) => l.includes(secret)), 'the secret is never logged');
  await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken });
});

test.serial("the caller's IP address and user agent go only to a webhook created with include_client_info: true", async (t) => {
  const bodies = new Map<string, { metadata: Record<string, unknown> }>();
  nock(HOOKS).post(/^\/client-info\/(with|without)$/).times(2).reply(function reply(uri, body) {
    bodies.set(uri, body as { metadata: Record<string, unknown> });
    return [200, 'ok'];
  });
  const withInfo = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/client-info/with`, event_types: ['device.offline'], include_client_info: true },
  });
  t.is(withInfo.status, 201, withInfo.text);
  t.is(withInfo.body.include_client_info, true);
  const without = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/client-info/without`, event_types: ['device.offline'] },
  });
  t.is(without.body.include_client_info, false);
  t.is(
    (await app.request('GET', `/api/v1/webhooks/${withInfo.body.id}`, { token: app.adminToken })).body
      .include_client_info,
    true,
  );
  const notBoolean = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/x`, event_types: ['*'], include_client_info: 'yes' },
  });
  t.is(notBoolean.status, 400);
  t.regex(notBoolean.body.error.message, /^body\.include_client_info: Expected boolean/);

  const { uuid } = await device();
  const off = await app.request('PATCH', `/api/v1/devices/${uuid}/active`, {
    token: app.adminToken,
    body: { is_active: false },
    headers: { 'User-Agent': 'ops-console/7' },
  });
  t.is(off.status, 200);
  await waitFor('both deliveries', () => bodies.size === 2);
  const sent = bodies.get('/client-info/with')!.metadata;
  t.is(sent['ip_address'], '127.0.0.1');
  t.is(sent['user_agent'], 'ops-console/7');
  const withheld = bodies.get('/client-info/without')!.metadata;
  t.false('ip_address' in withheld);
  t.false('user_agent' in withheld);
  t.like(withheld, { endpoint: '/api/v1/devices/:uuid/active', request_id: sent['request_id'], actor: sent['actor'] });
  for (const id of [withInfo.body.id, without.body.id]) {
    await app.request('DELETE', `/api/v1/webhooks/${id}`, { token: app.adminToken });
  }
});

test.serial('target_state.updated reaction: a receiver that keeps failing is given up on after the last attempt, recorded', async (t) => {
  const created = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/reconcile`, event_types: ['target_state.updated'] },
  });
  const scope = nock(HOOKS)
    // an Error instance: nock 14 emits a plain object on fetch only, never on node:http
    .post('/reconcile').replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
    .post('/reconcile').times(2).reply(503, 'down');
  const { uuid } = await device();
  const set = await app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: {} },
  });
  t.is(set.status, 200);
  const deliveries = async () =>
    (await app.request('GET', `/api/v1/webhooks/${created.body.id}/deliveries?status=failed`, {
      token: app.adminToken,
    })).body.deliveries;
  await waitFor('the delivery to be given up', async () => (await deliveries()).length === 1);
  t.true(scope.isDone());
  const [delivery] = await deliveries();
  t.like(delivery, {
    event_type: 'target_state.updated',
    status: 'failed',
    attempts: 3,
    last_status_code: 503,
    last_error: 'HTTP 503',
    next_attempt_at: null,
  });
  t.not(delivery.completed_at, null);
  t.is(delivery.attempt_log.length, 3);
  t.like(delivery.attempt_log[0], { attempt: 1, status_code: null, error: 'connection failed' });
  t.like(delivery.attempt_log[2], { attempt: 3, status_code: 503, response_body: 'down' });
  t.true(workerLog.some((l) => /attempt 3\/3 failed .*giving up/.test(l)));
});

test.serial('a deleted webhook receives nothing more; its pending deliveries are cancelled', async (t) => {
  const created = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/gone`, event_types: ['*'] },
  });
  t.is((await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken })).status, 204);
  const { uuid } = await device();
  // a marker webhook shows when the dispatcher has passed the new events
  const marker = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `${HOOKS}/marker`, event_types: ['device.online'] },
  });
  const seen: unknown[] = [];
  nock(HOOKS).post('/marker').reply(200, (_uri, body) => {
    seen.push(body);
    return 'ok';
  });
  await app.request('PATCH', `/api/v1/devices/${uuid}/active`, { token: app.adminToken, body: { is_active: false } });
  await app.request('PATCH', `/api/v1/devices/${uuid}/active`, { token: app.adminToken, body: { is_active: true } });
  await waitFor('the marker delivery', () => seen.length === 1);
  const gone = await app.request('GET', `/api/v1/webhooks/${created.body.id}/deliveries`, { token: app.adminToken });
  t.is(gone.status, 200);
  t.deepEqual(gone.body.deliveries, []);
  await app.request('DELETE', `/api/v1/webhooks/${marker.body.id}`, { token: app.adminToken });
  t.is(
    (await app.request('GET', '/api/v1/webhooks/00000000-0000-0000-0000-000000000000/deliveries', {
      token: app.adminToken,
    })).status,
    404,
  );
});

test.serial('a receiver that refuses connections: each attempt records "connection failed", not the errno (no port scans)', async (t) => {
  const port = await freePort();
  const created = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: `http://127.0.0.1:${port}/refused`, event_types: ['device.provisioned'] },
  });
  await device();
  const failed = async () =>
    (await app.request('GET', `/api/v1/webhooks/${created.body.id}/deliveries?status=failed`, {
      token: app.adminToken,
    })).body.deliveries;
  await waitFor('the delivery to fail', async () => (await failed()).length === 1);
  const [delivery] = await failed();
  t.is(delivery.attempt_log.length, 3);
  for (const attempt of delivery.attempt_log) {
    t.is(attempt.status_code, null);
    t.is(attempt.error, 'connection failed');
  }
  await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken });
});
