// `npm run bench:history`: the history views of one busy device (issue #16, finding 1: "the
// drift view of a device with 12,000 events written by 16 concurrent writers answers in < 1 s
// and /healthz stays under 100 ms meanwhile"). Prints figures, asserts nothing. Starts the
// service (app/main.ts) on a fresh database, has `--writers` clients report for one device at
// once (each report changes its state, so each is an event) until its stream holds `--events`
// events, counts timestamps that go backwards in version order, then asks for the drift view,
// the timeline and the diff of its whole history `--runs` times while another client asks for
// /healthz back to back, and prints the answer times and /healthz's latencies meanwhile; then
// the drift view of a second device of as many events whose log was written before migration
// 011 (some events stamped before the one before them: what used to cost a re-fold each).
// Report rate limits are off (one device key could not write 12,000 events quickly otherwise).
// `--service-root <dir>` runs another checkout's app/main.ts the same way (e.g. the commit
// before time-ordered appends), for comparison; `BENCH_PROFILE=<dir>` writes a CPU profile of
// the service. The machine's load is printed with /healthz's latency on an idle service: on a
// shared machine, wall times stretch with the load, the service's CPU time much less.
// Database: DATABASE_URL (a fresh database is created on that server) or embedded.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { adminQuery, databaseUrl, freePort, startScratchServer } from '../infra/postgres/scratch-server.ts';
import { createDatabasePool } from '../infra/postgres/pool.ts';
import { createEventStore } from '../infra/event-store/event-store.ts';
import { appendAsBefore011, generateHistory } from './generate-history.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '12000' },
    writers: { type: 'string', default: '16' },
    runs: { type: 'string', default: '3' },
    'service-root': { type: 'string' },
  },
});
const eventGoal = Number(args.events);
const writerCount = Number(args.writers);
const runs = Number(args.runs);
const serviceRoot = path.resolve(args['service-root'] ?? '.');

const server = await startScratchServer(process.env, (line) => console.log(line));
const dbName = `dt_bench_${randomBytes(4).toString('hex')}`;
await adminQuery(`CREATE DATABASE ${dbName}`, server.adminUrl);
const url = databaseUrl(dbName, server.adminUrl);
const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-bench-'));

async function startService(port: number): Promise<ChildProcess> {
  const profile = process.env['BENCH_PROFILE'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_PROFILE']}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'app/main.ts'], {
    cwd: serviceRoot,
    env: {
      ...process.env,
      DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      REPORT_RATE_LIMIT: 'off',
      MQTT: 'off',
      WORKERS: process.env['WORKERS'] ?? '1', // one worker unless WORKERS says
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let failed: Error | null = null;
  child.once('error', (error) => (failed = error));
  for (let i = 0; i < 600; i += 1) {
    if (failed !== null) throw new Error(`the service did not start: ${(failed as Error).message}`);
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the service did not start listening');
}

async function query<T>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

/** CPU milliseconds a process has used (user + system), from /proc. */
async function cpuMs(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime in clock ticks of 10 ms
}

/** Waits until the service has used under 5 % of a core for 2 s (its background jobs caught up). */
async function settle(pid: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < 90; i += 1) {
    const before = await cpuMs(pid);
    await new Promise((r) => setTimeout(r, 2_000));
    if (await cpuMs(pid) - before < 100) break;
  }
  return (performance.now() - t0) / 1000;
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;

/**
 * Asks /healthz back to back until `stop()`. `take()` returns the latencies (sorted) of every
 * request in flight at any time since `start()`: the one the service answers last, after the
 * view it was waiting behind, included.
 */
function probeHealth(port: number) {
  let samples: { sent: number; answered: number }[] = [];
  let running = true;
  let from = Infinity;
  let current: Promise<void> = Promise.resolve();
  const once = async () => {
    const sent = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}/healthz`);
    await response.arrayBuffer();
    samples.push({ sent, answered: performance.now() });
  };
  const done = (async () => {
    while (running) {
      current = once();
      await current;
    }
  })();
  return {
    start: () => {
      from = performance.now();
      samples = samples.filter((s) => s.answered >= from);
    },
    take: async () => {
      await current;
      const taken = samples.filter((s) => s.answered >= from).map((s) => s.answered - s.sent);
      from = Infinity;
      return taken.sort((a, b) => a - b);
    },
    stop: async () => {
      running = false;
      await done;
    },
  };
}

let service: ChildProcess | null = null;
try {
  console.log(
    `machine: ${cpus().length} cores, node ${process.version}, load average ${
      loadavg().map((l) => l.toFixed(1)).join(' ')
    }; service from ${serviceRoot}`,
  );
  const port = await freePort();
  service = await startService(port);
  // the bootstrap admin token (written at start-up; on a busy machine, a moment after /healthz answers)
  let admin = '';
  let provisioningKey = '';
  for (let attempt = 0; provisioningKey === '' && attempt < 50; attempt += 1) {
    admin = (await readFile(path.join(dataDir, 'admin-token'), 'utf8').catch(() => '')).trim();
    const keyResponse = await fetch(`http://127.0.0.1:${port}/api/v1/provisioning-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fleet_id: 'bench' }),
    });
    const body = await keyResponse.text();
    if (keyResponse.status === 201) provisioningKey = (JSON.parse(body) as { key: string }).key;
    else if (attempt === 49) throw new Error(`no provisioning key: ${keyResponse.status} ${body}`);
    else await new Promise((r) => setTimeout(r, 200));
  }
  const base = `http://127.0.0.1:${port}/api/v1`;
  const asAdmin = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
  const uuid = crypto.randomUUID();
  const deviceKey = `bench-${randomBytes(16).toString('hex')}`;
  const registered = await fetch(`${base}/device/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ uuid, deviceName: 'busy', deviceType: 'rpi4', deviceApiKey: deviceKey }),
  });
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${await registered.text()}`);
  const target = await fetch(`${base}/devices/${uuid}/target-state`, {
    method: 'POST',
    headers: asAdmin,
    body: JSON.stringify({
      apps: { '1000': { appId: 1000, appName: 'web', services: [{ serviceName: 'main', image: 'web:1' }] } },
      config: {},
    }),
  });
  if (target.status !== 200) throw new Error(`target: ${target.status} ${await target.text()}`);

  // the writers: every report changes the device's state (a restart count that only grows, the
  // service running or exited in turn), so every one is an event, some with derived ones
  let version = 0;
  let sent = 0;
  const failures: Record<string, number> = {};
  const t0 = performance.now();
  await Promise.all(Array.from({ length: writerCount }, async () => {
    while (version < eventGoal) {
      const n = sent++;
      const response = await fetch(`${base}/device/state`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${deviceKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          [uuid]: {
            apps: {
              '1000': {
                services: {
                  main: {
                    status: n % 7 === 0 ? 'Exited' : 'Running',
                    image: 'web:1',
                    containerId: 'c1',
                    restartCount: n,
                  },
                },
              },
            },
            cpu_usage: n % 100,
          },
        }),
      });
      const body = await response.json() as { devices?: Record<string, { version?: number }> };
      if (response.status !== 200) failures[response.status] = (failures[response.status] ?? 0) + 1;
      else version = Math.max(version, body.devices?.[uuid]?.version ?? 0);
    }
  }));
  const writeS = (performance.now() - t0) / 1000;
  const [order] = await query<{ events: number; backwards: number; shared: number; first: string }>(
    `SELECT count(*)::int AS events,
            count(*) FILTER (WHERE "timestamp" < previous)::int AS backwards,
            count(*) FILTER (WHERE "timestamp" = previous AND request_id IS DISTINCT FROM previous_request)::int AS shared,
            to_char(min("timestamp") AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS first
       FROM (SELECT "timestamp", metadata->>'request_id' AS request_id,
                    lag("timestamp") OVER (ORDER BY aggregate_version) AS previous,
                    lag(metadata->>'request_id') OVER (ORDER BY aggregate_version) AS previous_request
               FROM events WHERE aggregate_type = 'device' AND aggregate_id = $1) e`,
    [uuid],
  );
  console.log(
    `\n${writerCount} writers, one device: ${sent} reports in ${writeS.toFixed(1)} s (${
      Math.round(sent / writeS)
    }/s), ${order!.events} events${Object.keys(failures).length > 0 ? `, failed: ${JSON.stringify(failures)}` : ''}`,
  );
  console.log(
    `  timestamps going backwards in version order: ${
      order!.backwards
    }; stamped with the instant of the event before (another request's): ${order!.shared}`,
  );

  // a second device whose log was written before migration 011: 12,000 events made by the
  // domain's decide, some stamped before the event of the version before them
  const legacy = crypto.randomUUID();
  const pool = await createDatabasePool(url, { maximumPoolSize: 2 });
  try {
    const generated = generateHistory({
      uuid: legacy,
      count: eventGoal,
      start: new Date(Date.now() - 2 * 86_400_000).toISOString(),
      spanMs: 86_400_000,
      seed: 16,
      outOfOrder: 0.05,
      jitterMs: 60_000,
    });
    await appendAsBefore011(pool, createEventStore(pool), legacy, generated, 2_000);
  } finally {
    await pool.end();
  }
  const [stored] = await query<{ events: number; backwards: number }>(
    `SELECT count(*)::int AS events, count(*) FILTER (WHERE "timestamp" < previous)::int AS backwards
       FROM (SELECT "timestamp", lag("timestamp") OVER (ORDER BY aggregate_version) AS previous
               FROM events WHERE aggregate_type = 'device' AND aggregate_id = $1) e`,
    [legacy],
  );
  console.log(
    `a log written before migration 011 (bench/generate-history.ts appendAsBefore011): ${stored!.events} events, ${
      stored!.backwards
    } of them stamped before the event of the version before`,
  );

  const pid = service.pid!;
  console.log(
    `  the service settled (snapshots, listeners and projections caught up) in ${(await settle(pid)).toFixed(0)} s`,
  );
  const probe = probeHealth(port);
  probe.start();
  await new Promise((r) => setTimeout(r, 3_000));
  const idle = await probe.take();
  console.log(
    `\n/healthz alone for 3 s (what this machine's load costs it): ${idle.length} answers, p50 ${
      ms(percentile(idle, 0.5))
    }, p99 ${ms(percentile(idle, 0.99))}, max ${ms(idle.at(-1) ?? NaN)}`,
  );
  const views: [string, string][] = [
    ['drift view', `/devices/${uuid}/drift`],
    ['timeline page', `/devices/${uuid}/timeline`],
    ['diff, whole history', `/devices/${uuid}/diff?from=${encodeURIComponent(order!.first)}`],
    ['drift view of the log written before 011', `/devices/${legacy}/drift`],
  ];
  for (const [name, route] of views) {
    console.log(`\n${name} (GET /api/v1${route.split('?')[0]})`);
    for (let run = 1; run <= runs; run += 1) {
      probe.start();
      const cpuBefore = await cpuMs(pid);
      const started = performance.now();
      const response = await fetch(`${base}${route}`, { headers: { authorization: `Bearer ${admin}` } });
      const body = await response.text();
      const answerMs = performance.now() - started;
      const health = await probe.take();
      const cpu = await cpuMs(pid) - cpuBefore;
      const detail = response.status !== 200
        ? `status ${response.status}: ${body.slice(0, 200)}`
        : name.startsWith('drift view')
        ? `${(JSON.parse(body) as { intervals: unknown[] }).intervals.length} intervals`
        : `${Math.round(body.length / 1024)} KB`;
      console.log(
        `  run ${run}: answered in ${
          ms(answerMs)
        } (${detail}; the service's CPU ${cpu} ms, /healthz included); /healthz meanwhile: ${health.length} answers, p50 ${
          ms(percentile(health, 0.5))
        }, p99 ${ms(percentile(health, 0.99))}, max ${ms(health.at(-1) ?? NaN)}`,
      );
    }
  }
  await probe.stop();
  console.log(`\nload average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
} finally {
  if (service !== null && service.exitCode === null) {
    const exited = new Promise((resolve) => service!.once('exit', resolve));
    service.kill('SIGTERM');
    setTimeout(() => service?.kill('SIGKILL'), 10_000).unref();
    await exited;
  }
  await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
}
