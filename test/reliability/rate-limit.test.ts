// Abuse limits: per-device state reports and per-provisioning-key registration attempts, 429
// with Retry-After past the limit, nothing written, other callers unaffected, refilled with
// time; configured by REPORT_RATE_LIMIT / REGISTER_RATE_LIMIT, which the real service obeys.
import test from 'ava';
import { ConfigError, loadConfig } from '../../app/config.ts';
import { createLimiter } from '../../app/http/middleware/rate-limit.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { send } from './http-client.ts';
import { startReliabilityApp } from './reliability-app.ts';
import { startService, stopService } from './service-process.ts';

test('reports over the per-device limit get 429 with Retry-After, write nothing, and leave other devices alone; time refills', async (t) => {
  let now = Date.parse('2026-11-27T10:00:00Z');
  const app = await startReliabilityApp({
    clock: () => new Date(now),
    app: { rateLimits: { reports: { limit: 3, windowMs: 60_000 }, registrations: null } },
  });
  t.teardown(() => app.close());
  const admin = { Authorization: `Bearer ${app.adminToken}` };
  const pk =
    (await app.request({ method: 'POST', path: '/api/v1/provisioning-keys', headers: admin, body: { fleet_id: 'rl' } }))
      .json.key as string;
  const devices = [];
  for (let i = 0; i < 2; i += 1) {
    const uuid = crypto.randomUUID();
    const key = `rl-device-${crypto.randomUUID()}`;
    t.is(
      (await app.request({
        method: 'POST',
        path: '/api/v1/device/register',
        headers: { Authorization: `Bearer ${pk}` },
        body: { uuid, deviceName: 'rl', deviceType: 'rpi4', deviceApiKey: key },
      })).status,
      201,
    );
    devices.push({ uuid, key });
  }
  const [a, b] = devices as [{ uuid: string; key: string }, { uuid: string; key: string }];
  const reportFrom = (d: { uuid: string; key: string }, n: number) =>
    app.request({
      method: 'PATCH',
      path: '/api/v1/device/state',
      headers: { Authorization: `Bearer ${d.key}` },
      body: { [d.uuid]: { cpu_usage: n } },
    });
  await app.newWrites();
  for (let i = 0; i < 3; i += 1) t.is((await reportFrom(a, i)).status, 200);
  await app.newWrites();
  const refused = await reportFrom(a, 99);
  t.is(refused.status, 429);
  t.is(refused.json.error.code, 'rate_limited');
  t.regex(refused.json.error.message, /too many state reports from this device: at most 3 per 1 min; retry in 20 s/);
  t.is(refused.headers['retry-after'], '20', 'one report comes back every 60 s / 3');
  t.deepEqual(await app.newWrites(), [], 'a refused report writes nothing');
  // the same path spelled differently is the same route, and the same limit
  t.is(
    (await app.request({
      method: 'PATCH',
      path: '/API/V1/DEVICE/STATE/',
      headers: { Authorization: `Bearer ${a.key}` },
      body: { [a.uuid]: { cpu_usage: 5 } },
    })).status,
    429,
  );
  t.is((await reportFrom(b, 1)).status, 200, 'another device has its own bucket');
  now += 19_000;
  t.is((await reportFrom(a, 100)).status, 429, 'not yet');
  now += 1_000;
  t.is((await reportFrom(a, 101)).status, 200, 'one token back after 20 s');
  t.is((await reportFrom(a, 102)).status, 429);
  // bad credentials are still a 401, and other endpoints are not limited
  t.is(
    (await app.request({
      method: 'PATCH',
      path: '/api/v1/device/state',
      headers: { Authorization: 'Bearer nobody-has-this-key' },
      body: {},
    })).status,
    401,
  );
  t.is(
    (await app.request({
      method: 'GET',
      path: `/api/v1/device/${a.uuid}/target-state`,
      headers: { Authorization: `Bearer ${a.key}` },
    })).status,
    200,
  );
});

test('registration attempts over the per-key limit get 429; another key, and an unknown key (401), are unaffected', async (t) => {
  const app = await startReliabilityApp({
    app: { rateLimits: { reports: null, registrations: { limit: 2, windowMs: 3_600_000 } } },
  });
  t.teardown(() => app.close());
  const admin = { Authorization: `Bearer ${app.adminToken}` };
  const key = async () =>
    (await app.request({ method: 'POST', path: '/api/v1/provisioning-keys', headers: admin, body: { fleet_id: 'rl' } }))
      .json.key as string;
  const [k1, k2] = [await key(), await key()];
  const register = (pk: string, body: object = {}) =>
    app.request({
      method: 'POST',
      path: '/api/v1/device/register',
      headers: { Authorization: `Bearer ${pk}` },
      body: {
        uuid: crypto.randomUUID(),
        deviceName: 'rl',
        deviceType: 'rpi4',
        deviceApiKey: `rl-${crypto.randomUUID()}`,
        ...body,
      },
    });
  t.is((await register(k1)).status, 201);
  t.is((await register(k1, { deviceName: '' })).status, 400, 'a failed attempt is an attempt too');
  await app.newWrites();
  const refused = await register(k1);
  t.is(refused.status, 429);
  t.is(refused.headers['retry-after'], '1800');
  t.regex(refused.json.error.message, /registration attempts with this provisioning key: at most 2 per 60 min/);
  t.deepEqual(await app.newWrites(), []);
  t.is((await register(k2)).status, 201);
  for (let i = 0; i < 5; i += 1) t.is((await register('dtp_unknown-key-0000000000000000000')).status, 401);
});

test('issue #16 finding 3: lifecycle events are limited per device by events, not requests; over it 429, nothing written', async (t) => {
  let now = Date.parse('2026-11-27T10:00:00Z');
  const app = await startReliabilityApp({
    clock: () => new Date(now),
    app: { rateLimits: { reports: null, registrations: null, deviceEvents: { limit: 150, windowMs: 60_000 } } },
  });
  t.teardown(() => app.close());
  const admin = { Authorization: `Bearer ${app.adminToken}` };
  const pk =
    (await app.request({ method: 'POST', path: '/api/v1/provisioning-keys', headers: admin, body: { fleet_id: 'rl' } }))
      .json.key as string;
  const devices: { uuid: string; key: string }[] = [];
  for (let i = 0; i < 2; i += 1) {
    const device = { uuid: crypto.randomUUID(), key: `rl-device-${crypto.randomUUID()}` };
    const registered = await app.request({
      method: 'POST',
      path: '/api/v1/device/register',
      headers: { Authorization: `Bearer ${pk}` },
      body: { uuid: device.uuid, deviceName: 'rl', deviceType: 'rpi4', deviceApiKey: device.key },
    });
    t.is(registered.status, 201);
    devices.push(device);
  }
  const [a, b] = devices as [{ uuid: string; key: string }, { uuid: string; key: string }];
  let n = 0;
  const sendEvents = (d: { uuid: string; key: string }, count: number) =>
    app.request({
      method: 'POST',
      path: '/api/v1/device/events',
      headers: { Authorization: `Bearer ${d.key}` },
      body: {
        events: Array.from({ length: count }, () => ({ type: 'volume.created', data: { app_id: 1, name: `v${n++}` } })),
      },
    });
  await app.newWrites();
  t.is((await sendEvents(a, 100)).status, 201, '100 of 150');
  const refused = await sendEvents(a, 100);
  t.is(refused.status, 429, 'two requests, but 200 events: over the limit');
  t.regex(
    refused.json.error.message,
    /too many lifecycle events from this device: at most 150 per 1 min; retry in 20 s/,
  );
  t.is(refused.headers['retry-after'], '20', '50 more events come back in 20 s (150 per 60 s)');
  await app.newWrites();
  t.is((await sendEvents(a, 100)).status, 429);
  t.deepEqual(await app.newWrites(), [], 'a refused request writes nothing');
  t.is((await sendEvents(a, 50)).status, 201, 'what is left of the bucket');
  t.is((await sendEvents(a, 1)).status, 429);
  t.is((await sendEvents(b, 100)).status, 201, 'another device has its own bucket');
  now += 40_000;
  t.is((await sendEvents(a, 100)).status, 201, '100 events back after 40 s');
});

test('a cost above the whole bucket passes only when the bucket is full, and leaves it in debt', (t) => {
  let now = 0;
  const limiter = createLimiter({ limit: 10, windowMs: 10_000 }, () => now);
  t.is(limiter.take('d', 3), 0);
  t.is(limiter.take('d', 25), 3, 'the bucket holds 7: 3 s until it is full');
  now += 3_000;
  t.is(limiter.take('d', 25), 0, 'full: it passes');
  t.is(limiter.take('d', 1), 16, '15 tokens in debt, one more needed: 16 s');
});

test('the token bucket forgets callers beyond 100,000, full buckets first', (t) => {
  let now = 0;
  const limiter = createLimiter({ limit: 2, windowMs: 1000 }, () => now);
  t.is(limiter.take('hot'), 0);
  t.is(limiter.take('hot'), 0);
  t.is(limiter.take('hot'), 1);
  for (let i = 0; i < 100_500; i += 1) limiter.take(`caller-${i}`);
  t.true(limiter.size() <= 100_000, `${limiter.size()} buckets`);
  now += 500;
  t.is(limiter.take('fresh'), 0);
});

test('REPORT_RATE_LIMIT, REGISTER_RATE_LIMIT and DEVICE_EVENTS_RATE_LIMIT: <count>/<duration> or off; anything else stops the process naming the variable', (t) => {
  t.deepEqual(loadConfig({}).REPORT_RATE_LIMIT, { limit: 60, windowMs: 10_000 });
  t.deepEqual(loadConfig({}).REGISTER_RATE_LIMIT, { limit: 1200, windowMs: 60_000 });
  t.deepEqual(loadConfig({ REPORT_RATE_LIMIT: '5/1h' }).REPORT_RATE_LIMIT, { limit: 5, windowMs: 3_600_000 });
  t.is(loadConfig({ REGISTER_RATE_LIMIT: 'off' }).REGISTER_RATE_LIMIT, null);
  t.is(loadConfig({}).REQUEST_TIMEOUT, 30_000);
  t.deepEqual(loadConfig({}).DEVICE_EVENTS_RATE_LIMIT, { limit: 300, windowMs: 60_000 });
  t.is(loadConfig({ DEVICE_EVENTS_RATE_LIMIT: 'off' }).DEVICE_EVENTS_RATE_LIMIT, null);
  for (const bad of ['5', '0/1m', 'x/1m', '5/0s', '5/10', 'unlimited']) {
    const error = t.throws(() => loadConfig({ REPORT_RATE_LIMIT: bad }), { instanceOf: ConfigError });
    t.regex(error!.message, /REPORT_RATE_LIMIT: must be "off" or <count>\/<duration>/, bad);
  }
});

test('the real service applies REPORT_RATE_LIMIT from its environment', async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const dataDir = `/tmp/devicetrail-rl-${crypto.randomUUID()}`;
  const service = await startService({
    port: await freePort(),
    env: { DATABASE_URL: db.url, DATA_DIR: dataDir, REPORT_RATE_LIMIT: '2/1h', REALTIME_JOBS: 'false' },
  });
  t.teardown(async () => {
    await stopService(service, 5000);
  });
  const { readFile, rm } = await import('node:fs/promises');
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const admin = `Bearer ${(await readFile(`${dataDir}/admin-token`, 'utf8')).trim()}`;
  const pk = (await send(service.baseUrl, {
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    headers: { Authorization: admin },
    body: { fleet_id: 'rl' },
  })).json.key;
  const uuid = crypto.randomUUID();
  const key = `rl-${crypto.randomUUID()}`;
  t.is(
    (await send(service.baseUrl, {
      method: 'POST',
      path: '/api/v1/device/register',
      headers: { Authorization: `Bearer ${pk}` },
      body: { uuid, deviceName: 'rl', deviceType: 'rpi4', deviceApiKey: key },
    })).status,
    201,
  );
  const statuses = [];
  for (let i = 0; i < 3; i += 1) {
    statuses.push(
      (await send(service.baseUrl, {
        method: 'PATCH',
        path: '/api/v1/device/state',
        headers: { Authorization: `Bearer ${key}` },
        body: { [uuid]: { cpu_usage: i } },
      })).status,
    );
  }
  t.deepEqual(statuses, [200, 200, 429]);
});
