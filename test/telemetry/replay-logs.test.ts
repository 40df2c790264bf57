// Replay with device logs (issue #15): `replay state <uuid> --at T --logs 5m` shows what the
// device logged around T, and the timeline page (CLI `--logs`) what it logged when each drift
// interval started. Logs live in the database: with --fixture, --logs is a usage error.
import path from 'node:path';
import test from 'ava';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { openFixtures } from '../../infra/replay/fixture-source.ts';
import { runCli } from '../../replay/cli.ts';
import type { CommandContext } from '../../replay/command.ts';
import { startTestApp } from '../helpers/app.ts';

const T0 = Date.parse('2026-09-01T10:00:00.000Z');
const min = 60_000;

async function setup(t: import('ava').ExecutionContext) {
  let now = T0;
  const app = await startTestApp({ clock: () => new Date(now) });
  t.teardown(() => app.close());
  const { key } = await app.createProvisioningKey();
  const device = await app.registerDevice(key);
  const at = (offsetMs: number) => {
    now = T0 + offsetMs;
  };
  // in sync at +1m; a new target at +10m that the device does not run: drift from +10m
  at(min);
  await app.request('PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [device.uuid]: { apps: { '1': { services: { web: { status: 'running', image: 'web:1' } } } } } },
  });
  at(10 * min);
  await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: { '1': { services: [{ serviceName: 'web', image: 'web:2' }] } }, config: {} },
  });
  const line = (offset: number, message: string, level = 'info') => ({
    message,
    level,
    timestamp: T0 + offset,
    serviceName: 'web',
    source: { type: 'container', name: 'web' },
  });
  at(20 * min);
  const upload = await app.request('POST', `/api/v1/device/${device.uuid}/logs`, {
    token: device.key,
    body: [
      line(2 * min, 'long before'),
      line(9 * min, 'pulling web:2'),
      line(10 * min + 5_000, 'Error: manifest unknown for web:2', 'error'),
      line(11 * min, 'retrying pull'),
      line(19 * min, 'long after'),
    ],
  });
  t.is(upload.status, 201, upload.text);
  return { app, device };
}

function cli(app: Awaited<ReturnType<typeof startTestApp>>) {
  return async (argv: string[]) => {
    let stdout = '';
    let stderr = '';
    const ctx: CommandContext = {
      stdout: { write: (s: string) => (stdout += s), isTTY: false },
      stderr: { write: (s: string) => (stderr += s), isTTY: false },
      openDatabase: async () => ({
        source: createReplayQueries(app.db.pool, { clock: () => new Date(T0 + 30 * min) }),
        close: async () => {},
        pool: app.db.pool,
      }),
      openFixtures: async (files) => ({ source: await openFixtures(files), close: async () => {} }),
    };
    const code = await runCli(argv, ctx);
    return { code, stdout, stderr };
  };
}

test('replay state --logs shows what the device logged around the instant', async (t) => {
  const { app, device } = await setup(t);
  const run = cli(app);
  const text = await run(['state', device.uuid, '--at', '2026-09-01T10:10:00Z', '--logs', '2m']);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /OUT OF SYNC/);
  t.regex(text.stdout, /Logs {6}within 2m of the instant: 3 lines/);
  t.regex(text.stdout, /\+5s {2}10:10:05\.000 {2}error {2}web {2}Error: manifest unknown for web:2/);
  t.regex(text.stdout, /-1m {2}10:09:00\.000 {2}info {3}web {2}pulling web:2/);
  t.notRegex(text.stdout, /long before|long after/);

  const json = await run(['state', device.uuid, '--at', '2026-09-01T10:10:00Z', '--logs', '2m', '--json']);
  t.is(json.code, 0, json.stderr);
  const view = JSON.parse(json.stdout);
  t.is(view.drift.in_sync, false);
  t.is(view.logs.window_ms, 120_000);
  t.deepEqual(view.logs.lines.map((l: { message: string }) => l.message), [
    'pulling web:2',
    'Error: manifest unknown for web:2',
    'retrying pull',
  ]);
  t.is(view.logs.omitted, 0);

  const bad = await run(['state', device.uuid, '--at', '2026-09-01T10:10:00Z', '--logs', 'soon']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--logs: "soon" is not a duration/);
  const fixture = path.resolve(import.meta.dirname, '../../fixtures/seed-walkthrough.ndjson');
  const withFixture = await run(['state', '--fixture', fixture, '--at', 'now', '--logs', '5m']);
  t.is(withFixture.code, 2);
  t.regex(withFixture.stderr, /device logs are in the database/);
});

test('replay timeline --logs: the page shows what the device logged when each drift interval started', async (t) => {
  const { app, device } = await setup(t);
  const run = cli(app);
  const page = await run(['timeline', device.uuid, '--logs', '2m', '--html', '-']);
  t.is(page.code, 0, page.stderr);
  t.regex(page.stdout, /What the device logged when it started to drift/);
  t.regex(page.stdout, /drift interval 1, starting [^<]*: 3 line\(s\)/);
  t.true(page.stdout.includes('Error: manifest unknown for web:2'));
  t.false(page.stdout.includes('long before'));
  const without = await run(['timeline', device.uuid, '--html', '-']);
  t.false(without.stdout.includes('What the device logged'));
});

test('the timeline page over HTTP takes ?logs= too', async (t) => {
  const { app, device } = await setup(t);
  const page = await app.request('GET', `/api/v1/devices/${device.uuid}/timeline?logs=2m`, { token: app.adminToken });
  t.is(page.status, 200);
  t.true(page.text.includes('What the device logged when it started to drift'));
  t.true(page.text.includes('Error: manifest unknown for web:2'));
  const plain = await app.request('GET', `/api/v1/devices/${device.uuid}/timeline`, { token: app.adminToken });
  t.false(plain.text.includes('What the device logged'));
  const bad = await app.request('GET', `/api/v1/devices/${device.uuid}/timeline?logs=soon`, { token: app.adminToken });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /^query\.logs: must be a duration/);
});
