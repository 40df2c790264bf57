// CI's Deno smoke test, driven from Node: starts the service under Deno (the command of
// `deno task start`) and under Node (`npm start`'s), each on a fresh database, runs the same
// sequence against both — register, set target, poll, report, toggle, read events, replay
// a state, scrape metrics, fetch the API description — then SIGTERMs each and expects exit 0.
// Fails unless every step answers as expected and both runtimes answer alike (ids, secrets
// and times masked).
//
//   node --import tsx scripts/deno-smoke.ts [--server-url <postgres admin url> | --embedded]
//
// --server-url (default postgres://postgres@127.0.0.1:5432/postgres): a database per runtime
// is created on that server (DATABASE_URL mode) and dropped afterwards. --embedded: each
// runtime starts its own embedded PostgreSQL in a temporary DATA_DIR (no DATABASE_URL), and
// the script checks that SIGTERM stopped it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Buffer } from 'node:buffer';

const { values: args } = parseArgs({
  options: { 'server-url': { type: 'string' }, embedded: { type: 'boolean', default: false } },
});
const serverUrl = args['server-url'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const root = path.resolve(import.meta.dirname, '..');
const METRICS_TOKEN = `smoke-metrics-${randomBytes(12).toString('hex')}`;
const DEVICE = '12345678-1234-1234-1234-123456789abc';

type Step = { name: string; status: number; expect: number; body: unknown };
type Runtime = { name: 'deno' | 'node'; command: string; args: string[] };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

/**
 * The command `deno task start` runs, from deno.json, so the smoke test runs exactly that.
 * Its `node_modules/.bin/deno` is the binary itself after the package's postinstall, else a
 * Node shim that would not pass SIGTERM on; the package's own resolver names the binary.
 */
async function denoRuntime(): Promise<Runtime> {
  const config = JSON.parse(await readFile(path.join(root, 'deno.json'), 'utf8')) as {
    tasks: { start: { command: string } };
  };
  const [command, ...rest] = config.tasks.start.command.split(/\s+/);
  const denoBinary = (createRequire(import.meta.url)('deno/install_api.cjs') as { runInstall: () => string })
    .runInstall();
  return {
    name: 'deno',
    command: command === 'node_modules/.bin/deno' ? denoBinary : path.resolve(root, command!),
    args: rest,
  };
}

async function adminQuery(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts one runtime; resolves once /readyz answers 200. */
async function startService(runtime: Runtime, env: Record<string, string>) {
  const { DATABASE_URL: _inherited, ...base } = process.env;
  const child: ChildProcess = spawn(runtime.command, runtime.args, {
    cwd: root,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr!.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const baseUrl = `http://127.0.0.1:${env['PORT']}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`${runtime.name} exited with ${child.exitCode} while starting:\n${output}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${runtime.name} not ready after 120 s:\n${output}`);
    }
    const ready = await fetch(`${baseUrl}/readyz`).then((r) => r.status === 200, () => false);
    if (ready) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const postgresPid = /embedded PostgreSQL: started \(pid (\d+)/.exec(output)?.[1];
  return {
    child,
    exited,
    baseUrl,
    output: () => output,
    postgresPid: postgresPid === undefined ? null : Number(postgresPid),
  };
}

/** The same calls against one running service; returns what each answered. */
async function runFlow(baseUrl: string, adminToken: string): Promise<Step[]> {
  const steps: Step[] = [];
  async function call(
    name: string,
    expect: number,
    method: string,
    route: string,
    token: string | null,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<unknown> {
    const response = await fetch(`${baseUrl}${route}`, {
      method,
      headers: {
        'User-Agent': 'devicetrail-deno-smoke',
        ...(token === null ? {} : { Authorization: `Bearer ${token}` }),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch { /* not JSON: keep the text */ }
    steps.push({ name, status: response.status, expect, body: { etag: response.headers.get('etag'), body: parsed } });
    return parsed;
  }
  await call('health', 200, 'GET', '/healthz', null);
  const key = (await call('create provisioning key', 201, 'POST', '/api/v1/provisioning-keys', adminToken, {
    fleet_id: 'smoke-fleet',
    description: 'deno smoke',
  })) as { key: string };
  const deviceKey = 'smoke-device-secret-key';
  await call('register (seed body)', 201, 'POST', '/api/v1/device/register', key.key, {
    uuid: DEVICE,
    deviceName: 'test-device-001',
    deviceType: 'raspberry-pi-4',
    deviceApiKey: deviceKey,
    macAddress: 'b8:27:eb:12:34:56',
  });
  await call('register with a bad body → 400', 400, 'POST', '/api/v1/device/register', key.key, {
    uuid: 'nope',
    deviceName: '',
  });
  await call('set target (seed body)', 200, 'POST', `/api/v1/devices/${DEVICE}/target-state`, adminToken, {
    apps: { '1000': { appId: 1000, appName: 'my-app', services: [{ serviceName: 'main', image: 'my-app:1' }] } },
    config: { DEVICE_HOSTNAME: 'my-device' },
  });
  await call('device polls its target', 200, 'GET', `/api/v1/device/${DEVICE}/target-state`, deviceKey);
  await call(
    'poll with If-None-Match → 304',
    304,
    'GET',
    `/api/v1/device/${DEVICE}/target-state`,
    deviceKey,
    undefined,
    { 'If-None-Match': '"1"' },
  );
  await call('report current state (seed body)', 200, 'PATCH', '/api/v1/device/state', deviceKey, {
    [DEVICE]: {
      apps: { '1000': { status: 'running', containerId: 'abc123' } },
      ip_address: '192.168.1.100',
      cpu_usage: 25.5,
      memory_usage: 45.2,
    },
  });
  await call('disable', 200, 'PATCH', `/api/v1/devices/${DEVICE}/active`, adminToken, {
    is_active: false,
    reason: 'smoke',
  });
  await call('disabled device is refused → 403', 403, 'GET', `/api/v1/device/${DEVICE}/target-state`, deviceKey);
  await call('re-enable', 200, 'PATCH', `/api/v1/devices/${DEVICE}/active`, adminToken, { is_active: true });
  const events = await call('read events', 200, 'GET', `/api/v1/devices/${DEVICE}/events`, adminToken) as {
    events: { event_type: string; timestamp: string }[];
  };
  const targetSet = events.events.find((e) => e.event_type === 'target_state.updated');
  if (targetSet === undefined) throw new Error("no target_state.updated event in the device's events");
  await call(
    'replay the state when the target was set',
    200,
    'GET',
    `/api/v1/devices/${DEVICE}/state?at=${encodeURIComponent(targetSet.timestamp)}`,
    adminToken,
  );
  await call('replay the state now', 200, 'GET', `/api/v1/devices/${DEVICE}/state`, adminToken);
  await call('read the device', 200, 'GET', `/api/v1/devices/${DEVICE}`, adminToken);
  const metrics = await call('scrape metrics (METRICS_TOKEN)', 200, 'GET', '/metrics', METRICS_TOKEN) as string;
  for (
    const series of [
      'devicetrail_events_appended_total{event_type="device.provisioned"',
      'devicetrail_http_requests_total{method="POST",route="/api/v1/device/register",status="201"}',
    ]
  ) {
    if (typeof metrics !== 'string' || !metrics.includes(series)) throw new Error(`metrics lack ${series}`);
  }
  steps[steps.length - 1]!.body = { series: 'checked' }; // the values themselves differ between runs
  const spec = await call('API description', 200, 'GET', '/openapi.json', null) as { openapi?: string; paths?: object };
  steps[steps.length - 1]!.body = { openapi: spec.openapi, paths: Object.keys(spec.paths ?? {}).sort() };
  return steps;
}

const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// password and broker: each registration issues a new MQTT password, and each service's broker has its own port
const VOLATILE_KEYS = new Set([
  'transaction_id',
  'hash',
  'request_id',
  'duration_ms',
  'uptime_s',
  'latency_ms',
  'password',
  'broker',
]);

/** Masks what legitimately differs between two runs: times, generated ids, secrets, hashes. */
function normalise(value: unknown, key = ''): unknown {
  if (VOLATILE_KEYS.has(key)) return `<${key}>`;
  if (typeof value === 'string') {
    if (TIME.test(value)) return '<time>';
    if (UUID.test(value) && value.toLowerCase() !== DEVICE) return '<uuid>';
    if (/^dt[ap]_/.test(value)) return '<secret>';
    return value;
  }
  if (Array.isArray(value)) return value.map((v) => normalise(v));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v, k)]));
  }
  return value;
}

/** The first path where two JSON values differ, or null. */
function firstDifference(a: unknown, b: unknown, at = '$'): string | null {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`);
      if (d !== null) return d;
    }
  }
  return `${at}: ${JSON.stringify(a)?.slice(0, 200)} ≠ ${JSON.stringify(b)?.slice(0, 200)}`;
}

async function runOn(runtime: Runtime): Promise<Step[]> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `devicetrail-smoke-${runtime.name}-`));
  await chmod(dataDir, 0o755); // as root, the embedded PostgreSQL runs as another user
  const env: Record<string, string> = {
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
    METRICS_TOKEN,
    EMBEDDED_PG_PORT: String(await freePort()),
    MQTT_PORT: String(await freePort()),
    NODE_ENV: 'production',
    // one process on both runtimes (Deno has no node:cluster); WORKERS > 1: test/ops/cluster.test.ts
    WORKERS: '1',
  };
  let database: string | null = null;
  if (!args.embedded) {
    database = `devicetrail_smoke_${runtime.name}_${randomBytes(4).toString('hex')}`;
    await adminQuery(serverUrl, `CREATE DATABASE ${database}`);
    const url = new URL(serverUrl);
    url.pathname = `/${database}`;
    env['DATABASE_URL'] = url.toString();
  }
  try {
    const started = Date.now();
    const service = await startService(runtime, env);
    console.log(
      `${runtime.name}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${
        args.embedded ? `embedded PostgreSQL, pid ${service.postgresPid}` : `database ${database}`
      })`,
    );
    try {
      const adminToken = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
      const steps = await runFlow(service.baseUrl, adminToken);
      service.child.kill('SIGTERM');
      const code = await service.exited;
      steps.push({ name: 'SIGTERM → exit 0', status: code ?? -1, expect: 0, body: null });
      if (args.embedded) {
        const gone = service.postgresPid !== null && !alive(service.postgresPid);
        steps.push({ name: 'embedded PostgreSQL stopped', status: gone ? 1 : 0, expect: 1, body: null });
      }
      if (code !== 0) console.error(service.output());
      return steps;
    } finally {
      if (service.child.exitCode === null) service.child.kill('SIGKILL');
    }
  } finally {
    if (database !== null) {
      await adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
    }
    await rm(dataDir, { recursive: true, force: true });
  }
}

const runtimes: Runtime[] = [await denoRuntime(), {
  name: 'node',
  command: process.execPath,
  args: ['--import', 'tsx', 'app/main.ts'],
}];
console.log(
  `deno smoke test: ${
    args.embedded ? 'embedded PostgreSQL per runtime' : `fresh databases on ${serverUrl.replace(/:[^:@/]+@/, ':***@')}`
  }`,
);
const [deno, node] = [await runOn(runtimes[0]!), await runOn(runtimes[1]!)];
let passed = 0;
let failed = 0;
for (let i = 0; i < Math.max(deno.length, node.length); i += 1) {
  const d = deno[i];
  const n = node[i];
  const problems: string[] = [];
  if (d === undefined || n === undefined || d.name !== n.name) problems.push('the runtimes ran different steps');
  else {
    if (d.status !== d.expect) {
      problems.push(`deno answered ${d.status}, expected ${d.expect}: ${JSON.stringify(d.body).slice(0, 300)}`);
    }
    if (n.status !== n.expect) {
      problems.push(`node answered ${n.status}, expected ${n.expect}: ${JSON.stringify(n.body).slice(0, 300)}`);
    }
    const difference = firstDifference(normalise(d.body), normalise(n.body));
    if (difference !== null) problems.push(`deno and node differ at ${difference}`);
  }
  const name = d?.name ?? n?.name ?? '?';
  if (problems.length === 0) {
    passed += 1;
    console.log(`  ✔ ${name} (${d!.status})`);
  } else {
    failed += 1;
    console.log(`  ✘ ${name}\n      ${problems.join('\n      ')}`);
  }
}
console.log(`\ndeno-smoke: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
