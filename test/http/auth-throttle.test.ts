// Online key guessing (issue #16, finding 8): failed authentications are counted per client
// address and per key prefix in a sliding window; over a limit, 429 with Retry-After before any
// key is looked at; successes count nothing; the window slides with the clock.
import test from 'ava';
import { createAuthThrottle } from '../../app/http/middleware/auth-throttle.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let now = Date.parse('2026-12-01T10:00:00Z');

test('the throttle: a sliding window per address and per key prefix', (t) => {
  let at = 0;
  const throttle = createAuthThrottle(
    { perAddress: { limit: 3, windowMs: 10_000 }, perKeyPrefix: { limit: 2, windowMs: 60_000 } },
    () => at,
  );
  t.is(throttle.check('10.0.0.1', 'abcdefgh-1'), null);
  throttle.fail('10.0.0.1', null);
  at = 4_000;
  throttle.fail('10.0.0.1', null);
  t.is(throttle.check('10.0.0.1', null), null, 'two of three');
  at = 5_000;
  throttle.fail('10.0.0.1', null);
  t.like(throttle.check('10.0.0.1', null), { by: 'address', wait: 5 }, 'the first failure leaves the window at 10 s');
  t.is(throttle.check('10.0.0.2', null), null, 'another address is not concerned');
  at = 10_001;
  t.is(throttle.check('10.0.0.1', null), null, 'the oldest failure left the window');
  // per prefix: the first 8 characters, from any address
  throttle.fail('10.0.0.3', 'abcdefgh-one');
  throttle.fail('10.0.0.4', 'abcdefgh-two');
  t.like(throttle.check('10.0.0.5', 'abcdefgh-three'), { by: 'key prefix', wait: 60 });
  t.is(throttle.check('10.0.0.5', 'abcdefgX-three'), null);
});

let app: TestApp;

test.before(async () => {
  app = await startTestApp({
    clock: () => new Date(now),
    authThrottle: { perAddress: { limit: 5, windowMs: 60_000 }, perKeyPrefix: { limit: 3, windowMs: 60_000 } },
  });
});
test.after.always(async () => {
  await app?.close();
});

test.serial('successful authentications are never throttled', async (t) => {
  for (let i = 0; i < 20; i += 1) {
    t.is((await app.request('GET', '/api/v1/devices', { token: app.adminToken })).status, 200);
  }
});

test.serial('over the per-address limit: 429 with Retry-After, even for a good key, until the window slides', async (t) => {
  const wrong = (i: number) => app.request('GET', '/api/v1/devices', { token: `guess-${i}-${crypto.randomUUID()}` });
  // distinct prefixes (guess-0-…, guess-1-…): only the address limit applies
  for (let i = 0; i < 5; i += 1) t.is((await wrong(i)).status, 401);
  const refused = await wrong(5);
  t.is(refused.status, 429, refused.text);
  t.is(refused.body.error.code, 'too_many_failed_authentications');
  t.regex(refused.body.error.message, /from this address: at most 5 per 1 min; retry in 60 s/);
  t.is(refused.headers.get('retry-after'), '60');
  // the check comes before the key is looked at: the admin's good token waits too
  const good = await app.request('GET', '/api/v1/devices', { token: app.adminToken });
  t.is(good.status, 429);
  // as does any other credential header (the device agent's), and the refusals add no failure
  const header = await app.request('GET', '/api/v1/device/00000000-0000-4000-8000-000000000000/target-state', {
    headers: { 'X-Device-API-Key': 'f'.repeat(64) },
  });
  t.is(header.status, 429);
  now += 60_001;
  t.is((await app.request('GET', '/api/v1/devices', { token: app.adminToken })).status, 200);
  now += 60_001;
});

test.serial('over the per-prefix limit: a key of that prefix waits, others do not', async (t) => {
  const prefix = 'dta_AAAA';
  for (let i = 0; i < 3; i += 1) {
    t.is((await app.request('GET', '/api/v1/devices', { token: `${prefix}${i}-wrong` })).status, 401);
  }
  const refused = await app.request('GET', '/api/v1/devices', { token: `${prefix}-another-guess` });
  t.is(refused.status, 429);
  t.regex(refused.body.error.message, /from this key prefix: at most 3 per 1 min/);
  t.is((await app.request('GET', '/api/v1/devices', { token: app.adminToken })).status, 200, 'another prefix');
  now += 120_000;
});

test.serial('a register conflict on another device key counts as a failed guess of that key', async (t) => {
  const { key } = await app.createProvisioningKey({ fleet_id: 'throttle' });
  const owner = await app.registerDevice(key, { deviceApiKey: 'zzzzzzzz-the-real-key' });
  t.is(owner.response.status, 201);
  for (let i = 0; i < 3; i += 1) {
    const clash = await app.registerDevice(key, { deviceApiKey: 'zzzzzzzz-the-real-key' });
    t.is(clash.response.status, 409);
  }
  // the prefix has used up its budget: the device's own key is now refused before its lookup
  const own = await app.request('GET', `/api/v1/device/${owner.uuid}/target-state`, {
    token: 'zzzzzzzz-the-real-key',
  });
  t.is(own.status, 429);
  now += 120_000;
  const later = await app.request('GET', `/api/v1/device/${owner.uuid}/target-state`, {
    token: 'zzzzzzzz-the-real-key',
  });
  t.is(later.status, 200, later.text);
});
