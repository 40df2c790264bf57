// Every rejected request gets its documented status and a JSON error, and writes nothing.
import test from 'ava';
import { type RequestOptions, startTestApp, type TestApp, type TestResponse } from '../helpers/app.ts';

let app: TestApp;
let now = new Date('2026-11-01T12:00:00.000Z');
let device: { uuid: string; key: string };
let other: { uuid: string; key: string };
let provisioningKey: string;

test.before(async () => {
  app = await startTestApp({ clock: () => now });
  provisioningKey = (await app.createProvisioningKey({ fleet_id: 'f1' })).key;
  device = await app.registerDevice(provisioningKey);
  other = await app.registerDevice(provisioningKey);
  await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: {} },
  });
});
test.after.always(async () => {
  await app?.close();
});

/** Sends a request that must be refused with `status`, a JSON error, and no new event. */
async function refused(
  t: import('ava').ExecutionContext,
  status: number,
  method: string,
  path: string,
  opts: RequestOptions,
  field?: string,
): Promise<TestResponse> {
  const before = await app.eventCount();
  const response = await app.request(method, path, opts);
  t.is(response.status, status, `${method} ${path}: ${response.text}`);
  t.is(typeof response.body?.error?.code, 'string', response.text);
  t.is(typeof response.body?.error?.message, 'string');
  t.false(/\n\s+at /.test(response.text), 'no stack trace');
  if (field !== undefined) {
    t.true(response.body.error.message.includes(field), `message names ${field}: ${response.body.error.message}`);
  }
  t.is(await app.eventCount(), before, 'no event written');
  return response;
}

const register = (body: Record<string, unknown>) => ({
  token: provisioningKey,
  body: {
    uuid: crypto.randomUUID(),
    deviceName: 'd',
    deviceType: 't',
    deviceApiKey: `k-${crypto.randomUUID()}`,
    ...body,
  },
});

test.serial('invalid JSON → 400 invalid_json', async (t) => {
  const r = await refused(t, 400, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    raw: '{"apps": ',
    headers: { 'Content-Type': 'application/json' },
  });
  t.is(r.body.error.code, 'invalid_json');
  await refused(t, 400, 'PATCH', '/api/v1/device/state', {
    token: device.key,
    raw: '{bad json}',
    headers: { 'Content-Type': 'application/json' },
  });
});

test.serial('not JSON → 415', async (t) => {
  await refused(t, 415, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    raw: 'apps=1',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
});

test.serial('body too large → 413', async (t) => {
  const big = { apps: {}, config: { BIG: 'x'.repeat(300 * 1024) } };
  await refused(t, 413, 'POST', `/api/v1/devices/${device.uuid}/target-state`, { token: app.adminToken, body: big });
});

test.serial('missing or wrong-typed fields → 400 naming the field', async (t) => {
  await refused(t, 400, 'POST', '/api/v1/device/register', register({ deviceName: undefined }), 'deviceName');
  await refused(t, 400, 'POST', '/api/v1/device/register', register({ uuid: 'not-a-uuid' }), 'uuid');
  await refused(t, 400, 'POST', '/api/v1/device/register', register({ deviceApiKey: 42 }), 'deviceApiKey');
  await refused(t, 400, 'POST', '/api/v1/device/register', register({ macAddress: 'zz' }), 'macAddress');
  await refused(t, 400, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { config: {} },
  }, 'apps');
  await refused(t, 400, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: [] },
  }, 'apps');
  await refused(t, 400, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: { '1': { services: [{}] } } },
  }, 'serviceName');
  await refused(t, 400, 'PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: app.adminToken,
    body: { is_active: 'yes' },
  }, 'is_active');
  await refused(
    t,
    400,
    'PATCH',
    `/api/v1/devices/${device.uuid}/active`,
    { token: app.adminToken, body: {} },
    'is_active',
  );
  await refused(t, 400, 'PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [device.uuid]: { cpu_usage: 'high' } },
  }, 'cpu_usage');
  await refused(
    t,
    400,
    'PATCH',
    '/api/v1/device/state',
    { token: device.key, body: { [device.uuid]: { apps: 'x' } } },
    'apps',
  );
  await refused(t, 400, 'PATCH', '/api/v1/device/state', { token: device.key, body: {} });
  await refused(t, 400, 'PATCH', '/api/v1/device/state', { token: device.key, body: [1] });
  await refused(t, 400, 'PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [device.uuid]: { hostname: 'a\u0000b' } },
  }, 'NUL');
  await refused(
    t,
    400,
    'POST',
    '/api/v1/provisioning-keys',
    { token: app.adminToken, body: { fleet_id: '' } },
    'fleet_id',
  );
  await refused(t, 400, 'GET', '/api/v1/devices?in_sync=maybe', { token: app.adminToken }, 'in_sync');
  await refused(
    t,
    400,
    'GET',
    `/api/v1/devices/${device.uuid}/events?since=yesterday`,
    { token: app.adminToken },
    'since',
  );
  await refused(t, 400, 'GET', '/api/v1/devices/not-a-uuid', { token: app.adminToken }, 'uuid');
});

test.serial('no, malformed or unknown credentials → 401', async (t) => {
  const body = { apps: {}, config: {} };
  const none = await refused(t, 401, 'POST', `/api/v1/devices/${device.uuid}/target-state`, { body });
  t.truthy(none.headers.get('www-authenticate'));
  await refused(t, 401, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    body,
    headers: { Authorization: 'Basic abc' },
  });
  await refused(t, 401, 'POST', `/api/v1/devices/${device.uuid}/target-state`, { body, token: 'dta_wrong' });
  await refused(t, 401, 'PATCH', '/api/v1/device/state', {
    token: 'no-such-device-key',
    body: { [device.uuid]: { cpu_usage: 1 } },
  });
  await refused(t, 401, 'POST', '/api/v1/device/register', { ...register({}), token: 'dtp_unknown' });
  await refused(t, 401, 'GET', '/api/v1/devices', {});
});

test.serial('valid credentials of the wrong kind or for another device → 403', async (t) => {
  await refused(t, 403, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: device.key,
    body: { apps: {} },
  });
  await refused(t, 403, 'POST', '/api/v1/device/register', { ...register({}), token: app.adminToken });
  await refused(t, 403, 'GET', '/api/v1/devices', { token: provisioningKey });
  await refused(t, 403, 'GET', `/api/v1/device/${other.uuid}/target-state`, { token: device.key });
  // any uuid in the body that is not the caller: 403 and nothing written for any uuid
  await refused(t, 403, 'PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [device.uuid]: { cpu_usage: 1 }, [other.uuid]: { cpu_usage: 2 } },
  });
  await refused(t, 403, 'PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [other.uuid]: { cpu_usage: 2 } },
  });
});

test.serial('unknown device → 404', async (t) => {
  const missing = crypto.randomUUID();
  await refused(t, 404, 'POST', `/api/v1/devices/${missing}/target-state`, {
    token: app.adminToken,
    body: { apps: {} },
  });
  await refused(t, 404, 'PATCH', `/api/v1/devices/${missing}/active`, {
    token: app.adminToken,
    body: { is_active: false },
  });
  await refused(t, 404, 'GET', `/api/v1/devices/${missing}`, { token: app.adminToken });
  await refused(t, 404, 'GET', `/api/v1/devices/${missing}/events`, { token: app.adminToken });
  await refused(t, 404, 'DELETE', `/api/v1/provisioning-keys/${missing}`, { token: app.adminToken });
});

test.serial('duplicate uuid with another key → 409; a device key already in use → 409', async (t) => {
  await refused(t, 409, 'POST', '/api/v1/device/register', register({ uuid: device.uuid }));
  await refused(t, 409, 'POST', '/api/v1/device/register', register({ deviceApiKey: other.key }));
});

test.serial('stale If-Match → 412; malformed If-Match → 400', async (t) => {
  const r = await refused(t, 412, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {} },
    headers: { 'If-Match': '"0"' },
  });
  t.is(r.body.error.details.current_version, 1);
  await refused(t, 400, 'POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {} },
    headers: { 'If-Match': 'banana' },
  });
  const ok = await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {} },
    headers: { 'If-Match': '"1"' },
  });
  t.is(ok.status, 200);
  t.is(ok.body.version, 2);
});

test.serial('an expired provisioning key → 403', async (t) => {
  const key = await app.createProvisioningKey({ fleet_id: 'f1', expires_at: '2026-11-01T13:00:00Z' });
  t.is((await app.registerDevice(key.key)).response.status, 201);
  now = new Date('2026-11-01T13:00:01.000Z');
  const r = await refused(t, 403, 'POST', '/api/v1/device/register', { ...register({}), token: key.key });
  t.is(r.body.error.code, 'provisioning_key_expired');
  await refused(t, 400, 'POST', '/api/v1/provisioning-keys', {
    token: app.adminToken,
    body: { fleet_id: 'f', expires_at: '2020-01-01T00:00:00Z' },
  }, 'expires_at');
});

test.serial('unknown routes and methods get JSON errors', async (t) => {
  await refused(t, 404, 'GET', '/api/v1/nope', { token: app.adminToken });
  await refused(t, 405, 'PUT', `/api/v1/devices/${device.uuid}/target-state`, { token: app.adminToken, body: {} });
  t.deepEqual(app.errors, [], 'no unexpected (500) errors');
});

test.serial('a register conflict answers one body whatever clashed and whichever fleet owns it (issue #16, finding 8)', async (t) => {
  const foreignKey = (await app.createProvisioningKey({ fleet_id: 'another-fleet' })).key;
  const foreign = await app.registerDevice(foreignKey);
  t.is(foreign.response.status, 201);
  const bodies = [
    (await refused(t, 409, 'POST', '/api/v1/device/register', register({ uuid: device.uuid }))).body,
    (await refused(t, 409, 'POST', '/api/v1/device/register', register({ uuid: foreign.uuid }))).body,
    (await refused(t, 409, 'POST', '/api/v1/device/register', register({ deviceApiKey: other.key }))).body,
    (await refused(t, 409, 'POST', '/api/v1/device/register', register({ deviceApiKey: foreign.key }))).body,
  ];
  for (const body of bodies) t.deepEqual(body, bodies[0]);
  t.is(bodies[0].error.code, 'registration_conflict');
  const text = JSON.stringify(bodies);
  for (const named of [device.uuid, other.uuid, foreign.uuid, 'another-fleet']) t.false(text.includes(named), named);
});

test.serial('without valid credentials the body is never read: a 250 KB invalid JSON body gets 401, not 400 (issue #16, finding 6)', async (t) => {
  const big = `[${'1,'.repeat(125_000)}`; // 250 KB, and not JSON
  const path = `/api/v1/devices/${device.uuid}/target-state`;
  const cases: [number, Record<string, string>][] = [
    [401, {}],
    [401, { Authorization: 'Bearer dta_not-a-real-token-0000000000000000' }],
    [401, { 'X-Device-API-Key': 'f'.repeat(64) }],
    [403, { Authorization: `Bearer ${device.key}` }], // a device key on an admin route: refused before the body too
  ];
  for (const [status, headers] of cases) {
    const r = await refused(t, status, 'POST', path, {
      raw: big,
      headers: { 'Content-Type': 'application/json', ...headers },
    });
    t.not(r.body.error.code, 'invalid_json');
  }
  // nor its size: over BODY_LIMIT_KB without credentials is a 401, not a 413
  const tooBig = `[${'1,'.repeat(200_000)}1]`; // 400 KB
  await refused(t, 401, 'POST', path, { raw: tooBig, headers: { 'Content-Type': 'application/json' } });
  await refused(t, 413, 'POST', path, {
    token: app.adminToken,
    raw: tooBig,
    headers: { 'Content-Type': 'application/json' },
  });
  // nor its content type: a text body without credentials is a 401, not a 415
  await refused(t, 401, 'POST', path, { raw: 'hello', headers: { 'Content-Type': 'text/plain' } });
  // a device route, and the device log upload that reads its own body, likewise
  await refused(t, 401, 'PATCH', '/api/v1/device/state', { raw: big, headers: { 'Content-Type': 'application/json' } });
  await refused(t, 401, 'POST', `/api/v1/device/${device.uuid}/logs`, {
    raw: big,
    headers: { 'Content-Type': 'application/x-ndjson' },
  });
  // with credentials the same body is parsed and refused for what it is
  const r = await refused(t, 400, 'POST', path, {
    token: app.adminToken,
    raw: big,
    headers: { 'Content-Type': 'application/json' },
  });
  t.is(r.body.error.code, 'invalid_json');
});

test.serial('the Bearer scheme is case-insensitive (RFC 7235); the token is not (issue #16, finding 12)', async (t) => {
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    const r = await app.request('GET', '/api/v1/devices', {
      headers: { Authorization: `${scheme} ${app.adminToken}` },
    });
    t.is(r.status, 200, `${scheme}: ${r.text}`);
  }
  await refused(t, 401, 'GET', '/api/v1/devices', {
    headers: { Authorization: `Bearer ${app.adminToken.toUpperCase()}` },
  });
  await refused(t, 401, 'GET', '/api/v1/devices', { headers: { Authorization: `Bearer${app.adminToken}` } });
});

test.serial('a +json media type is parsed as JSON: valid bodies work, invalid ones are 400 (issue #16, finding 12)', async (t) => {
  const path = `/api/v1/devices/${device.uuid}/target-state`;
  const ok = await app.request('POST', path, {
    token: app.adminToken,
    raw: JSON.stringify({ apps: {}, config: { VND_JSON: 'yes' } }),
    headers: { 'Content-Type': 'application/vnd.x+json' },
  });
  t.is(ok.status, 200, ok.text);
  const after = await app.request('GET', `/api/v1/devices/${device.uuid}`, { token: app.adminToken });
  t.deepEqual(after.body.target.config, { VND_JSON: 'yes' });
  const bad = await refused(t, 400, 'POST', path, {
    token: app.adminToken,
    raw: '{"apps": {',
    headers: { 'Content-Type': 'application/vnd.x+json; charset=utf-8' },
  });
  t.is(bad.body.error.code, 'invalid_json');
  // anything else is still a 415
  await refused(t, 415, 'POST', path, { token: app.adminToken, raw: '{}', headers: { 'Content-Type': 'text/json' } });
});

test.serial('X-Request-Id from an untrusted peer gets a unique suffix: two requests never share an id (issue #16, finding 12)', async (t) => {
  const ids = [];
  for (let i = 0; i < 3; i += 1) {
    const r = await app.request('GET', '/healthz', { headers: { 'X-Request-Id': 'same-id' } });
    ids.push(r.headers.get('x-request-id') ?? '');
  }
  t.is(new Set(ids).size, 3, ids.join(' '));
  for (const id of ids) t.regex(id, /^same-id\.[\w-]+$/);
  const fresh = await app.request('GET', '/healthz', { headers: { 'X-Request-Id': 'has spaces' } });
  t.regex(fresh.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
});
