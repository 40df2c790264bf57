// Device logs (issue #15, item 4): the device agent's uploads (gzip NDJSON, X-Device-API-Key,
// lines shaped as its cloud log backend builds them), a JSON array, the limits, the per-device
// rate limit, the paged admin read with its filters, and the live tail.
import { Buffer } from 'node:buffer';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { createApp } from '../../app/http/create-app.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const T0 = Date.parse('2026-09-01T10:00:00.000Z');

/** A line as the agent's container log monitor builds it (agent/src/logging/monitor.ts). */
const containerLine = (message: string, at: number, extra: Record<string, unknown> = {}) => ({
  message,
  timestamp: at,
  level: 'info',
  source: { type: 'container', name: 'web' },
  serviceId: 1,
  serviceName: 'web',
  containerId: 'c0ffee',
  isStdErr: false,
  isSystem: false,
  ...extra,
});

/** A line as the agent's own logger builds it (agent/src/logging/agent-logger.ts): with fields we do not keep. */
const agentLine = (message: string, at: number, level = 'warn') => ({
  timestamp: at,
  level,
  message,
  source: { type: 'system', name: 'Sync' },
  isSystem: true,
  deviceId: 'ignored',
  context: { component: 'Sync' },
});

/** The agent's body: NDJSON, one line per log, a trailing newline, gzip-compressed. */
const agentBody = (lines: unknown[]) => gzipSync(`${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);

async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  const now = T0;
  const app = await startTestApp({ clock: () => new Date(now) });
  t.teardown(() => app.close());
  const { key } = await app.createProvisioningKey();
  const device = await app.registerDevice(key);
  return { app, device };
}

/** POSTs raw bytes (fetch: the helper sends strings only). */
async function upload(
  baseUrl: string,
  uuid: string,
  body: Uint8Array | string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> & { error?: { message: string } } }> {
  const response = await fetch(`${baseUrl}/api/v1/device/${uuid}/logs`, { method: 'POST', headers, body });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text === '' ? {} : JSON.parse(text) };
}

const agentHeaders = (key: string) => ({
  'Content-Type': 'application/x-ndjson',
  'Content-Encoding': 'gzip',
  'X-Device-API-Key': key,
});

const storedCount = (app: TestApp) =>
  app.db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM device_logs`);

test("the agent's gzip NDJSON upload is stored and read back with filters and pages", async (t) => {
  const { app, device } = await setup(t);
  const lines = [
    containerLine('GET / 200', T0 - 5_000),
    containerLine('GET /health 200', T0 - 4_000),
    containerLine('Error: ECONNREFUSED db:5432', T0 - 3_000, { level: 'error', isStdErr: true }),
    agentLine('Report failed, retrying', T0 - 2_000),
    containerLine('worker started', T0 - 1_000, {
      serviceName: 'worker',
      source: { type: 'container', name: 'worker' },
    }),
  ];
  const answer = await upload(app.baseUrl, device.uuid, agentBody(lines), agentHeaders(device.key));
  t.is(answer.status, 201, JSON.stringify(answer.body));
  t.deepEqual(answer.body, {
    uuid: device.uuid,
    stored: 5,
    truncated: 0,
    ignored_fields: ['body.*.context', 'body.*.deviceId'],
  });
  const before = await app.eventCount();

  const path = `/api/v1/devices/${device.uuid}/logs?since=2026-09-01T09:00:00Z`;
  const all = await app.request('GET', path, { token: app.adminToken });
  t.is(all.status, 200, all.text);
  t.deepEqual(all.body.logs.map((l: { message: string }) => l.message), lines.map((l) => l.message));
  t.like(all.body.logs[2], {
    timestamp: new Date(T0 - 3_000).toISOString(),
    received_at: new Date(T0).toISOString(),
    level: 'error',
    service_name: 'web',
    service_id: 1,
    container_id: 'c0ffee',
    source: { type: 'container', name: 'web' },
    is_stderr: true,
    is_system: false,
    truncated: false,
  });
  t.is(all.body.next_cursor, null);

  const get = async (query: string) =>
    (await app.request('GET', `${path}&${query}`, { token: app.adminToken })).body.logs.map((l: { message: string }) =>
      l.message
    );
  t.deepEqual(await get('service=worker'), ['worker started']);
  t.deepEqual(await get('level=warn'), ['Error: ECONNREFUSED db:5432', 'Report failed, retrying']);
  t.deepEqual(await get('level=error'), ['Error: ECONNREFUSED db:5432']);
  t.deepEqual(await get('q=econnrefused'), ['Error: ECONNREFUSED db:5432']);
  t.deepEqual(await get('order=desc&limit=2'), ['worker started', 'Report failed, retrying']);

  // pages: each cursor continues where the last page stopped, in both orders
  for (const order of ['asc', 'desc']) {
    const seen: string[] = [];
    let after: string | null = null;
    do {
      const page: { body: { logs: { message: string }[]; next_cursor: string | null } } = await app.request(
        'GET',
        `${path}&limit=2&order=${order}${after === null ? '' : `&after=${after}`}`,
        { token: app.adminToken },
      );
      seen.push(...page.body.logs.map((l) => l.message));
      after = page.body.next_cursor;
    } while (after !== null);
    const expected = lines.map((l) => l.message);
    t.deepEqual(seen, order === 'asc' ? expected : expected.reverse());
  }
  t.is((await app.request('GET', `${path}&after=nonsense`, { token: app.adminToken })).status, 400);
  t.is((await app.request('GET', `${path}&level=loud`, { token: app.adminToken })).status, 400);
  t.is((await app.request('GET', path, { token: device.key })).status, 403);
  t.is(await app.eventCount(), before, 'logs are not events');
});

test('a JSON array and plain NDJSON are taken too; a device with no clock gets the arrival time', async (t) => {
  const { app, device } = await setup(t);
  const array = await app.request('POST', `/api/v1/device/${device.uuid}/logs`, {
    token: device.key,
    body: [containerLine('from an array', T0 - 1000), { message: 'no clock', timestamp: 5_000, level: 'WARNING' }],
  });
  t.is(array.status, 201, array.text);
  const ndjson = await upload(
    app.baseUrl,
    device.uuid,
    `${JSON.stringify({ message: 'plain', level: 'debug' })}\r\n\r\n`,
    { 'Content-Type': 'application/x-ndjson', Authorization: `Bearer ${device.key}` },
  );
  t.is(ndjson.status, 201);
  const rows = await app.db.pool.any(
    sql.type(z.object({ message: z.string(), timestamp: z.string(), level: z.string() }))`
    SELECT message, "timestamp", level FROM device_logs ORDER BY id`,
  );
  t.deepEqual(rows, [
    { message: 'from an array', timestamp: new Date(T0 - 1000).toISOString(), level: 'info' },
    { message: 'no clock', timestamp: new Date(T0).toISOString(), level: 'warn' },
    { message: 'plain', timestamp: new Date(T0).toISOString(), level: 'debug' },
  ]);
});

test('uploads are refused whole, writing nothing: wrong device, bad lines, other types', async (t) => {
  const { app, device } = await setup(t);
  const { key } = await app.createProvisioningKey();
  const other = await app.registerDevice(key);
  const body = agentBody([containerLine('x', T0)]);
  t.is((await upload(app.baseUrl, device.uuid, body, agentHeaders(other.key))).status, 403, 'another device');
  t.is((await upload(app.baseUrl, device.uuid, body, { 'Content-Type': 'application/x-ndjson' })).status, 401);
  const badLine = await upload(
    app.baseUrl,
    device.uuid,
    agentBody([containerLine('fine', T0), { message: 42 }]),
    agentHeaders(device.key),
  );
  t.is(badLine.status, 400);
  t.regex(badLine.body.error!.message, /^body line 2\.message: /);
  const badJson = await upload(
    app.baseUrl,
    device.uuid,
    gzipSync('{"message": "a"}\nnot json\n'),
    agentHeaders(device.key),
  );
  t.is(badJson.status, 400);
  t.is(badJson.body.error!.message, 'body line 2: not a JSON object');
  const badLevel = await upload(
    app.baseUrl,
    device.uuid,
    agentBody([{ message: 'a', level: 'loud' }]),
    agentHeaders(device.key),
  );
  t.is(badLevel.status, 400);
  t.regex(badLevel.body.error!.message, /^body line 1\.level: must be one of debug, info, warn, error/);
  const xml = await upload(app.baseUrl, device.uuid, '<log/>', {
    'Content-Type': 'application/xml',
    'X-Device-API-Key': device.key,
  });
  t.is(xml.status, 415);
  const object = await app.request('POST', `/api/v1/device/${device.uuid}/logs`, {
    token: device.key,
    body: { logs: [] },
  });
  t.is(object.status, 400);
  const broken = await upload(app.baseUrl, device.uuid, Buffer.from('not gzip at all'), agentHeaders(device.key));
  t.is(broken.status, 400);
  t.is(await storedCount(app), 0);
});

test('the body limit applies after decompression; an over-long message is cut, not refused', async (t) => {
  const { app, device } = await setup(t);
  // ~1.2 MiB of NDJSON that gzip shrinks to a few KiB
  const bomb = agentBody(Array.from({ length: 1200 }, (_, i) => containerLine(`${i} ${'a'.repeat(1000)}`, T0)));
  t.true(bomb.length < 64 * 1024);
  const refused = await upload(app.baseUrl, device.uuid, bomb, agentHeaders(device.key));
  t.is(refused.status, 413);
  t.regex(refused.body.error!.message, /LOGS_BODY_LIMIT_KB/);
  t.is(await storedCount(app), 0);

  const long = await upload(
    app.baseUrl,
    device.uuid,
    agentBody([containerLine('b'.repeat(20_000), T0), containerLine('nul \u0000 kept', T0)]),
    agentHeaders(device.key),
  );
  t.is(long.status, 201);
  t.is(long.body['truncated'], 1);
  const rows = await app.db.pool.any(
    sql.type(z.object({ len: z.number(), truncated: z.boolean(), message: z.string() }))`
    SELECT length(message) AS len, truncated, message FROM device_logs ORDER BY id`,
  );
  t.deepEqual(rows.map((r) => [r.len, r.truncated]), [[16_384, true], [10, false]]);
  t.is(rows[1]!.message, 'nul \uFFFD kept');
});

test('log lines are rate limited per device: 429 with Retry-After, nothing stored', async (t) => {
  const db = await startTestApp({ clock: () => new Date(T0) });
  t.teardown(() => db.close());
  // the same database, served by an app with a small line budget
  const app = createApp(db.deps, {
    rateLimits: { reports: null, registrations: null, deviceLogs: { limit: 10, windowMs: 60_000 } },
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { key } = await db.createProvisioningKey();
  const device = await db.registerDevice(key);
  const eight = agentBody(Array.from({ length: 8 }, (_, i) => containerLine(`line ${i}`, T0)));
  t.is((await upload(baseUrl, device.uuid, eight, agentHeaders(device.key))).status, 201);
  const over = await upload(baseUrl, device.uuid, eight, agentHeaders(device.key));
  t.is(over.status, 429);
  t.is(over.headers.get('Retry-After'), '36');
  t.regex(over.body.error!.message, /too many log lines from this device: at most 10 per 1 min/);
  t.is(await storedCount(db), 8);
  const other = await db.registerDevice(key);
  t.is((await upload(baseUrl, other.uuid, eight, agentHeaders(other.key))).status, 201, 'buckets are per device');
});

test('a disabled device is refused (after its contact); the live tail follows new lines', async (t) => {
  const { app, device } = await setup(t);
  const stream = await fetch(`${app.baseUrl}/api/v1/devices/${device.uuid}/logs/stream?level=warn`, {
    headers: { Authorization: `Bearer ${app.adminToken}` },
  });
  t.is(stream.status, 200);
  t.regex(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = stream.body!.getReader();
  const decoder = new TextDecoder();
  let received = '';
  const until = async (pattern: RegExp) => {
    const deadline = Date.now() + 15_000;
    while (!pattern.test(received) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      received += decoder.decode(value, { stream: true });
    }
  };
  await until(/: connected/);
  const body = agentBody([containerLine('quiet', T0), containerLine('loud', T0, { level: 'error' })]);
  t.is((await upload(app.baseUrl, device.uuid, body, agentHeaders(device.key))).status, 201);
  await until(/"message":"loud"/);
  t.regex(received, /id: \d+\.\d+\ndata: \{[^\n]*"message":"loud"/);
  t.notRegex(received, /"quiet"/, 'the level filter applies to the tail');
  await reader.cancel();

  t.is(
    (await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
      token: app.adminToken,
      body: { is_active: false },
    })).status,
    200,
  );
  const refused = await upload(app.baseUrl, device.uuid, body, agentHeaders(device.key));
  t.is(refused.status, 403);
  t.is(await storedCount(app), 2);
});
