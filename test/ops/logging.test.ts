// Logs: one JSON line per request with request id, route, status, duration and device
// uuid; never a secret; LOG_LEVEL honoured; pretty lines only when asked or on a terminal.
import test from 'ava';
import { createLogger, usePretty } from '../../app/observability/logger.ts';
import { prettyLine } from '../../app/observability/log-pretty.ts';
import { redact, REDACTED } from '../../app/observability/log-redact.ts';
import { startOpsApp } from './ops-app.ts';

function capture() {
  const lines: string[] = [];
  return {
    lines,
    destination: {
      write: (chunk: string) => {
        lines.push(...chunk.split('\n').filter((l) => l !== ''));
      },
    },
  };
}

test('each request logs request id, method, route, status, duration and the device uuid; no secret appears', async (t) => {
  const out = capture();
  const app = await startOpsApp({
    logger: createLogger({ level: 'info', format: 'json', destination: out.destination }),
  });
  t.teardown(() => app.close());
  const device = await app.registerDevice();
  const report = await app.request('PATCH', '/api/v1/device/state', {
    token: device.key,
    headers: { 'X-Request-Id': 'req-log-test-1' },
    body: { [device.uuid]: { cpu_usage: 1 } },
  });
  t.is(report.status, 200);
  const bad = await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: 'nope' },
  });
  t.is(bad.status, 400);

  const entries = out.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  // the caller's id with a suffix of the service's: not from a trusted proxy (issue #16, finding 12)
  const reportId = report.headers.get('x-request-id') ?? '';
  t.true(reportId.startsWith('req-log-test-1.'), reportId);
  const reportLine = entries.find((e) => e['request_id'] === reportId);
  t.truthy(reportLine);
  t.like(reportLine, {
    level: 'info',
    method: 'PATCH',
    route: '/api/v1/device/state',
    path: '/api/v1/device/state',
    status: 200,
    device_uuid: device.uuid,
    actor: `device:${device.uuid}`,
    service: 'devicetrail',
  });
  t.is(typeof reportLine!['duration_ms'], 'number');
  t.is(typeof reportLine!['time'], 'string');
  const registerLine = entries.find((e) => e['route'] === '/api/v1/device/register');
  t.like(registerLine, { status: 201, device_uuid: device.uuid }, 'a registration names the device it registers');
  t.regex(String(registerLine!['actor']), /^provisioning_key:[0-9a-f-]{36}$/);
  const badLine = entries.find((e) => e['route'] === '/api/v1/devices/:uuid/target-state');
  t.like(badLine, { status: 400, device_uuid: device.uuid });
  t.regex(String(badLine!['request_id']), /^[0-9a-f-]{36}$/);

  const all = out.lines.join('\n');
  for (const secret of [device.key, device.provisioningKey, app.adminToken]) {
    t.false(all.includes(secret), 'a secret was logged');
  }
});

test('LOG_LEVEL filters lines; probes log at debug only', async (t) => {
  const out = capture();
  const app = await startOpsApp({
    logger: createLogger({ level: 'warn', format: 'json', destination: out.destination }),
  });
  t.teardown(() => app.close());
  await app.request('GET', `/api/v1/devices`, { token: app.adminToken });
  t.is(out.lines.length, 0, 'info lines are below warn');

  const debug = capture();
  const app2 = await startOpsApp({
    logger: createLogger({ level: 'debug', format: 'json', destination: debug.destination }),
  });
  t.teardown(() => app2.close());
  await app2.request('GET', '/healthz');
  t.like(JSON.parse(debug.lines[0]!), { level: 'debug', route: '/healthz', status: 200 });
});

test('logRequests=false turns the request lines off', async (t) => {
  const out = capture();
  const app = await startOpsApp({
    logger: createLogger({ level: 'info', format: 'json', destination: out.destination }),
    logRequests: false,
  });
  t.teardown(() => app.close());
  await app.request('GET', '/api/v1/devices', { token: app.adminToken });
  t.is(out.lines.length, 0);
});

test('secret-looking fields and values are redacted at any depth, in errors too', (t) => {
  const out = capture();
  const logger = createLogger({ level: 'info', format: 'json', destination: out.destination });
  const error = new Error(
    'connect failed for postgres://app:hunter2@db:5432/x with Bearer dta_abcdefghijklmnopqrstuvwx',
  );
  logger.info({
    headers: { authorization: 'Bearer abc', 'user-agent': 'curl' },
    body: { deviceApiKey: 'my-device-secret', nested: [{ password: 'p', token: 't', apiKey: 'k' }] },
    err: error,
    note: 'key dtp_ABCDEFGHIJKLMNOPQRSTUVWX was used',
  }, 'hello');
  const line = out.lines[0]!;
  for (
    const secret of [
      'Bearer abc',
      'my-device-secret',
      '"p"',
      '"t"',
      '"k"',
      'hunter2',
      'dta_abcdefghijklmnopqrstuvwx',
      'dtp_ABCDEFGHIJKLMNOPQRSTUVWX',
    ]
  ) {
    t.false(line.includes(secret), `leaked ${secret}`);
  }
  const entry = JSON.parse(line);
  t.is(entry.headers['user-agent'], 'curl');
  t.is(entry.headers.authorization, REDACTED);
  t.is(entry.body.nested[0].password, REDACTED);
  t.regex(entry.err.message, /postgres:\/\/app:\[Redacted\]@db:5432/);
  t.is(entry.err.type, 'Error');
  t.deepEqual(redact({ device_name: 'x', count: 3, ok: true, none: null }), {
    device_name: 'x',
    count: 3,
    ok: true,
    none: null,
  });
});

test('pretty output: when asked, or automatically on a terminal outside production', (t) => {
  t.true(usePretty({ format: 'pretty', isTTY: false }));
  t.false(usePretty({ format: 'json', isTTY: true }));
  t.true(usePretty({ format: 'auto', isTTY: true, nodeEnv: 'development' }));
  t.false(usePretty({ format: 'auto', isTTY: true, nodeEnv: 'production' }));
  t.false(usePretty({ format: 'auto', isTTY: false, nodeEnv: 'development' }));

  const out = capture();
  createLogger({ level: 'info', format: 'pretty', destination: out.destination }).warn(
    { route: '/x', status: 503 },
    'slow',
  );
  t.regex(out.lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} WARN {2}slow {2}route=\/x status=503$/);
  t.is(prettyLine('not json', false), 'not json\n');
});
