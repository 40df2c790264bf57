// Every documented limit (README "Limits"): a request at the limit is accepted, one past it is
// refused with the documented status and a message naming the field, and nothing is written.
// The README's table must list each limit tested here.
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { INPUT_LIMITS } from '../../app/http/middleware/input-limits.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
let device: { uuid: string; key: string };
let provisioningKey: string;
test.before(async () => {
  app = await startTestApp({ webhookPolicy: { allowPrivate: true } }); // webhooks on 127.0.0.1, never delivered
  provisioningKey = (await app.createProvisioningKey()).key;
  const registered = await app.registerDevice(provisioningKey);
  device = { uuid: registered.uuid, key: registered.key };
});
test.after.always(async () => {
  await app?.close();
});

type Req = { method: string; path: string; token: () => string; body: unknown };

/** A documented limit: the README row that states it, a request within it and one past it. */
type Limit = { readme: string; within: () => Req; beyond: () => Req; status: number; message: RegExp };

const target = (body: unknown): Req => ({
  method: 'POST',
  path: `/api/v1/devices/${device.uuid}/target-state`,
  token: () => app.adminToken,
  body,
});
const report = (fields: Record<string, unknown>): Req => ({
  method: 'PATCH',
  path: '/api/v1/device/state',
  token: () => device.key,
  body: { [device.uuid]: fields },
});
const register = (fields: Record<string, unknown>): Req => ({
  method: 'POST',
  path: '/api/v1/device/register',
  token: () => provisioningKey,
  body: {
    uuid: crypto.randomUUID(),
    deviceName: 'limits',
    deviceType: 'rpi4',
    deviceApiKey: `limits-${crypto.randomUUID()}`,
    ...fields,
  },
});
const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
const apps = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i + 1), {}]));
const nest = (depth: number) => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i += 1) v = { d: v };
  return v;
};
const cpu = () => Math.random() * 100;

const limits: Limit[] = [
  {
    readme: '| request body | `BODY_LIMIT_KB` (256 KiB) | 413 |',
    within: () =>
      target({
        apps: {},
        config: { A: 'a'.repeat(60_000), B: 'b'.repeat(60_000), C: 'c'.repeat(60_000), D: 'd'.repeat(60_000) },
      }),
    beyond: () =>
      target({
        apps: {},
        config: {
          A: 'a'.repeat(60_000),
          B: 'b'.repeat(60_000),
          C: 'c'.repeat(60_000),
          D: 'd'.repeat(60_000),
          E: 'e'.repeat(30_000),
        },
      }),
    status: 413,
    message: /request body is too large/,
  },
  {
    readme: `| JSON nesting depth | ${INPUT_LIMITS.maxDepth} levels | 400 |`,
    within: () => target({ apps: {}, config: { DEEP: nest(INPUT_LIMITS.maxDepth - 3) } }),
    beyond: () => target({ apps: {}, config: { DEEP: nest(INPUT_LIMITS.maxDepth + 1) } }),
    status: 400,
    message: /^body\.config\.DEEP(\.d)*: nested more than 32 levels deep/,
  },
  {
    readme: '| keys in one JSON object | 1,000 | 400 |',
    within: () => report({ config: keys(1000), cpu_usage: cpu() }),
    beyond: () => report({ config: keys(1001), cpu_usage: cpu() }),
    status: 400,
    message: /^body\.[0-9a-f-]+\.config: more than 1000 keys/,
  },
  {
    readme: '| items in one JSON array | 1,000 | 400 |',
    within: () => target({ apps: {}, config: { LIST: Array.from({ length: 1000 }, (_, i) => i) } }),
    beyond: () => target({ apps: {}, config: { LIST: Array.from({ length: 1001 }, (_, i) => i) } }),
    status: 400,
    message: /^body\.config\.LIST: more than 1000 items/,
  },
  {
    readme: '| characters in one JSON string | 65,536 | 400 |',
    within: () => target({ apps: {}, config: { CERT: 'x'.repeat(65_536) } }),
    beyond: () => target({ apps: {}, config: { CERT: 'x'.repeat(65_537) } }),
    status: 400,
    message: /^body\.config\.CERT: longer than 65536 characters/,
  },
  {
    readme: '| apps per target, apps per report | 100 | 400 |',
    within: () => target({ apps: apps(100), config: {} }),
    beyond: () => target({ apps: apps(101), config: {} }),
    status: 400,
    message: /^body\.apps: at most 100 apps/,
  },
  {
    readme: '| apps per target, apps per report | 100 | 400 |',
    within: () => report({ apps: apps(100), cpu_usage: cpu() }),
    beyond: () => report({ apps: apps(101), cpu_usage: cpu() }),
    status: 400,
    message: /apps: at most 100 apps/,
  },
  {
    readme: '| `top_processes`, `network_interfaces` per report | 100, 64 rows | 400 |',
    within: () =>
      report({
        top_processes: Array.from({ length: 100 }, (_, i) => ({ pid: i, name: `p${i}`, cpu: 1, mem: 1 })),
        network_interfaces: Array.from({ length: 64 }, (_, i) => ({ name: `eth${i}` })),
      }),
    beyond: () =>
      report({ top_processes: Array.from({ length: 101 }, (_, i) => ({ pid: i, name: `p${i}`, cpu: 1, mem: 1 })) }),
    status: 400,
    message: /top_processes: Array must contain at most 100/,
  },
  {
    readme: '| services per target app | 100 | 400 |',
    within: () =>
      target({
        apps: { 1: { services: Array.from({ length: 100 }, (_, i) => ({ serviceName: `s${i}` })) } },
        config: {},
      }),
    beyond: () =>
      target({
        apps: { 1: { services: Array.from({ length: 101 }, (_, i) => ({ serviceName: `s${i}` })) } },
        config: {},
      }),
    status: 400,
    message: /^body\.apps\.1\.services: Array must contain at most 100/,
  },
  {
    readme: '| config keys per target | 500 | 400 |',
    within: () => target({ apps: {}, config: keys(500) }),
    beyond: () => target({ apps: {}, config: keys(501) }),
    status: 400,
    message: /^body\.config: at most 500 config keys/,
  },
  {
    readme: '| volumes, networks per reported app | 100 each | 400 |',
    within: () =>
      report({ apps: { 1: { volumes: Array.from({ length: 100 }, (_, i) => `v${i}`) } }, cpu_usage: cpu() }),
    beyond: () =>
      report({ apps: { 1: { volumes: Array.from({ length: 101 }, (_, i) => `v${i}`) } }, cpu_usage: cpu() }),
    status: 400,
    message: /apps\.1\.volumes: Array must contain at most 100/,
  },
  {
    readme: '| events per `POST /device/events` | 100 | 400 |',
    within: () => ({
      method: 'POST',
      path: '/api/v1/device/events',
      token: () => device.key,
      body: {
        events: Array.from(
          { length: 100 },
          (_, i) => ({ type: 'volume.created', data: { app_id: 1, name: `n${i}-${crypto.randomUUID()}` } }),
        ),
      },
    }),
    beyond: () => ({
      method: 'POST',
      path: '/api/v1/device/events',
      token: () => device.key,
      body: {
        events: Array.from({ length: 101 }, (_, i) => ({ type: 'volume.created', data: { app_id: 1, name: `n${i}` } })),
      },
    }),
    status: 400,
    message: /^body\.events: at most 100 events per request/,
  },
  {
    readme: '| event types per webhook | 50 | 400 |',
    within: () => ({
      method: 'POST',
      path: '/api/v1/webhooks',
      token: () => app.adminToken,
      body: { url: 'http://127.0.0.1:9/x', event_types: Array.from({ length: 50 }, () => '*') },
    }),
    beyond: () => ({
      method: 'POST',
      path: '/api/v1/webhooks',
      token: () => app.adminToken,
      body: { url: 'http://127.0.0.1:9/x', event_types: Array.from({ length: 51 }, () => '*') },
    }),
    status: 400,
    message: /^body\.event_types: Array must contain at most 50/,
  },
  {
    readme: '| `deviceName`, `deviceType` | 128, 64 characters | 400 |',
    within: () => register({ deviceName: 'n'.repeat(128), deviceType: 't'.repeat(64) }),
    beyond: () => register({ deviceName: 'n'.repeat(129) }),
    status: 400,
    message: /^body\.deviceName: String must contain at most 128/,
  },
  {
    readme: '| `deviceApiKey` | 8–256 printable ASCII characters | 400 |',
    within: () => register({ deviceApiKey: `k${crypto.randomUUID()}`.padEnd(256, 'k') }),
    beyond: () => register({ deviceApiKey: 'k'.repeat(257) }),
    status: 400,
    message: /^body\.deviceApiKey: String must contain at most 256/,
  },
  {
    readme: '| `reason`, `description` | 500 characters | 400 |',
    within: () => ({
      method: 'PATCH',
      path: `/api/v1/devices/${device.uuid}/active`,
      token: () => app.adminToken,
      body: { is_active: true, reason: 'r'.repeat(500) },
    }),
    beyond: () => ({
      method: 'PATCH',
      path: `/api/v1/devices/${device.uuid}/active`,
      token: () => app.adminToken,
      body: { is_active: true, reason: 'r'.repeat(501) },
    }),
    status: 400,
    message: /^body\.reason: String must contain at most 500/,
  },
  {
    readme: '| `fleet_id` | 128 characters | 400 |',
    within: () => ({
      method: 'POST',
      path: '/api/v1/provisioning-keys',
      token: () => app.adminToken,
      body: { fleet_id: 'f'.repeat(128) },
    }),
    beyond: () => ({
      method: 'POST',
      path: '/api/v1/provisioning-keys',
      token: () => app.adminToken,
      body: { fleet_id: 'f'.repeat(129) },
    }),
    status: 400,
    message: /^body\.fleet_id: String must contain at most 128/,
  },
  {
    readme: '| page size (`limit`) | 1,000 | 400 |',
    within: () => ({ method: 'GET', path: '/api/v1/devices?limit=1000', token: () => app.adminToken, body: undefined }),
    beyond: () => ({ method: 'GET', path: '/api/v1/devices?limit=1001', token: () => app.adminToken, body: undefined }),
    status: 400,
    message: /^query\.limit: must be a whole number from 1 to 1000$/,
  },
  {
    readme: '| page offset (`offset`) | 1,000,000 | 400 |',
    within: () => ({
      method: 'GET',
      path: '/api/v1/devices?offset=1000000',
      token: () => app.adminToken,
      body: undefined,
    }),
    beyond: () => ({
      method: 'GET',
      path: '/api/v1/devices?offset=1000001',
      token: () => app.adminToken,
      body: undefined,
    }),
    status: 400,
    message: /^query\.offset: must be a whole number from 0 to 1000000$/,
  },
  {
    readme: '| NUL characters, unpaired surrogates | none, in bodies, query strings and paths | 400 |',
    within: () => report({ update_status: 'idle', cpu_usage: cpu() }),
    beyond: () => report({ update_status: 'id\u0000le', cpu_usage: cpu() }),
    status: 400,
    message: /update_status: NUL characters are not allowed/,
  },
  {
    readme: '| NUL characters, unpaired surrogates | none, in bodies, query strings and paths | 400 |',
    within: () => ({
      method: 'GET',
      path: '/api/v1/devices?fleet=fleet-1',
      token: () => app.adminToken,
      body: undefined,
    }),
    beyond: () => ({
      method: 'GET',
      path: '/api/v1/devices?fleet=fleet%00-1',
      token: () => app.adminToken,
      body: undefined,
    }),
    status: 400,
    message: /^query\.fleet: NUL characters are not allowed/,
  },
];

const send = (r: Req) =>
  app.request(r.method, r.path, { token: r.token(), ...(r.body === undefined ? {} : { body: r.body }) });

for (const [i, limit] of limits.entries()) {
  test.serial(`limit ${i + 1}: ${limit.readme.split('|')[1]!.trim()} — within is accepted, beyond is ${limit.status} naming the field, nothing written`, async (t) => {
    const within = await send(limit.within());
    t.true(
      within.status >= 200 && within.status < 300,
      `within the limit: ${within.status} ${within.text.slice(0, 300)}`,
    );
    const before = await app.eventCount();
    const beyond = await send(limit.beyond());
    t.is(beyond.status, limit.status, beyond.text.slice(0, 300));
    t.regex(beyond.body?.error?.message ?? '', limit.message);
    t.is(await app.eventCount(), before, 'nothing written');
  });
}

test('the request head is limited by Node.js to 16 KiB: 431', async (t) => {
  const response = await app.request('GET', '/api/v1/devices', {
    token: app.adminToken,
    headers: { 'X-Padding': 'p'.repeat(17 * 1024) },
  });
  t.is(response.status, 431);
});

test('README "Limits" lists every limit tested here', async (t) => {
  const readme = await readFile('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('### Limits'));
  t.true(readme.includes('### Limits'), 'README has a "Limits" section');
  for (const limit of limits) {
    t.true(section.includes(limit.readme), `README "Limits" is missing the row ${limit.readme}`);
  }
  for (
    const row of [
      '| request line and headers | 16 KiB (Node.js) | 431',
      '| state reports per device | `REPORT_RATE_LIMIT`',
      // test/reliability/rate-limit.test.ts and test/http/device-agent.test.ts test these two
      '| lifecycle events per device (`POST /device/events`, counted per event) | `DEVICE_EVENTS_RATE_LIMIT`',
      '| device entries per state report | one per device',
      '| registration attempts per provisioning key | `REGISTER_RATE_LIMIT`',
      '| time to answer | `REQUEST_TIMEOUT`',
      // test/telemetry/device-logs.test.ts tests these
      '| device log upload, once decoded | `LOGS_BODY_LIMIT_KB` (1 MiB) | 413',
      '| lines per log upload | 10,000 | 400',
      '| characters of a log message | 16,384 | cut',
      '| log lines per device | `LOGS_RATE_LIMIT` (6,000 per minute) | 429 + `Retry-After`',
      '| buckets per metrics read (`step`) | 1,000 | 400',
    ]
  ) {
    t.true(section.includes(row), `README "Limits" is missing ${row}`);
  }
});
