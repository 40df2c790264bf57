// `npm run bench:ingest`: drives PATCH /api/v1/device/state and prints figures (asserts
// nothing about speed). Default: 1,000 devices, 64 connections, 20 s, then the baseline
// server (bench/baseline-server.ts) the same way on the same PostgreSQL, and the ratio.
// Paced fleet: `npm run bench:ingest -- --devices 10000 --interval 5s --duration 60s`.
// `--mode worst-case` (default): every report changes the device's state (its local_ip), so
// every report is an event. `--mode fleet-mix`: a fleet as it runs (defaults 10,000 devices
// every 5 s for 60 s, after one first report each): ≈ 95 % of reports change only metrics (no
// event, a sample in device_metrics, issue #15), ≈ 5 % change state.
// `--transport mqtt` (fleet-mix unless `--mode` says otherwise): then the same load over MQTT
// (QoS 1 to iot/device/<uuid>/state, one connection per device, bench/mqtt-load.ts) against the
// same service, and the target-change → device latency over the embedded broker.
// Database: DATABASE_URL (a fresh database is created on that server) or embedded.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type LoadResult, runLoad } from './load.ts';
import pg from 'pg';
import { adminQuery, databaseUrl, freePort, startScratchServer } from '../infra/postgres/scratch-server.ts';
import { benchMqtt } from './mqtt-bench.ts';
import { createCredentialHasher } from '../infra/devices/credentials.ts';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '64' },
    duration: { type: 'string', default: '20s' },
    interval: { type: 'string' },
    'skip-baseline': { type: 'boolean', default: false },
    transport: { type: 'string', default: 'http' },
    mode: { type: 'string', default: 'worst-case' },
    'state-changes': { type: 'string', default: '5' },
    'target-samples': { type: 'string', default: '200' },
    warmup: { type: 'string', default: '3s' },
    'log-level': { type: 'string', default: 'warn' },
  },
});
if (!['http', 'mqtt'].includes(args.transport)) throw new Error('--transport: http or mqtt');
// over MQTT the fleet as it runs is the default (issue #18); `--mode worst-case` still applies
if (args.transport === 'mqtt' && !process.argv.some((a) => a === '--mode' || a.startsWith('--mode='))) {
  args.mode = 'fleet-mix';
}
if (!['worst-case', 'fleet-mix'].includes(args.mode)) throw new Error('--mode: worst-case or fleet-mix');
const fleetMix = args.mode === 'fleet-mix';
// the fleet-mix defaults: the fleet of the issue, unless the flags say otherwise
const given = (name: string) => process.argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`));
if (fleetMix) {
  if (!given('devices')) args.devices = '10000';
  if (!given('interval')) args.interval = '5s';
  if (!given('duration')) args.duration = '60s';
}
/** Per cent of fleet-mix reports that change state. */
const stateChangePercent = Number(args['state-changes']);
const seconds = (s: string) => Number(s.replace(/s$/, ''));
const deviceCount = Number(args.devices);
// a warm-up (unmeasured) before each measured run: JIT, caches, connections
const warmup = seconds(args.warmup);
const duration = seconds(args.duration);
const paced = args.interval !== undefined;
const rate = paced ? Math.round(deviceCount / seconds(args.interval!)) : undefined;
const connections = paced ? Math.max(Number(args.connections), 100) : Number(args.connections);

const server = await startScratchServer(process.env, (line) => console.log(line));
const dbName = `dt_bench_${randomBytes(4).toString('hex')}`;
await adminQuery(`CREATE DATABASE ${dbName}`, server.adminUrl);
const url = databaseUrl(dbName, server.adminUrl);
const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-bench-'));

// deno-lint-ignore no-explicit-any -- benchmark rows are read as loose JSON
async function sql(text: string): Promise<any[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

const children = new Set<ChildProcess>();

const mqttPort = await freePort();

async function startProcess(script: string, port: number): Promise<ChildProcess> {
  const profile = process.env['BENCH_PROFILE'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_PROFILE']}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', script], {
    // provisioning thousands of devices with one key is the operator's doing here: lift that limit
    env: {
      ...process.env,
      DATABASE_URL: url,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      // warn by default; `--log-level info` adds the production default's line per request (to /dev/null)
      LOG_LEVEL: args['log-level'],
      REGISTER_RATE_LIMIT: '1000000/1m',
      MQTT_PORT: String(mqttPort),
      MQTT_HOST: '127.0.0.1',
      // one worker unless WORKERS says (RSS and CPU are then the primary's alone: sum the workers)
      WORKERS: process.env['WORKERS'] ?? '1',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  // ready when it answers on its port (the service logs JSON at LOG_LEVEL=warn, so no banner)
  for (let i = 0; i < 600; i += 1) {
    if (exited !== undefined) throw new Error(`${script} exited with ${exited}`);
    const up = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
    if (up) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${script} did not start listening on ${port}`);
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

/** The largest peak RSS of the server's processes (with WORKERS > 1: the largest worker's, per worker). */
async function treePeakRssMb(root: number): Promise<number> {
  const table = await processTable();
  const pids = [...table.keys()].filter((pid) => {
    for (let at = pid, hops = 0; hops < 64; hops += 1) {
      if (at === root) return true;
      const parent = table.get(at)?.ppid;
      if (parent === undefined || parent <= 1) return false;
      at = parent;
    }
    return false;
  });
  const peaks = await Promise.all(pids.map((pid) => peakRssMb(pid).catch(() => 0)));
  return Math.max(0, ...peaks);
}

/** Clock ticks per second of /proc's CPU times (getconf CLK_TCK; 100 on Linux). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * Every process's parent and CPU time so far (seconds): its own user + system time and that of
 * its children it has reaped (cutime + cstime). A PostgreSQL backend that exits (a pool
 * connection closed mid-run) leaves the table, but its CPU is then counted in the postmaster's.
 */
async function processTable(): Promise<Map<number, { ppid: number; cpuS: number }>> {
  const table = new Map<number, { ppid: number; cpuS: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue;
    // after "pid (comm) ": state ppid … utime (14th field) stime cutime cstime (17th)
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    table.set(Number(entry), {
      ppid: Number(fields[1]),
      cpuS: (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS,
    });
  }
  return table;
}

/** CPU seconds used so far by `root` and every process below it, reaped children included. */
function treeCpuS(table: Map<number, { ppid: number; cpuS: number }>, root: number): number {
  let total = 0;
  for (const [pid, p] of table) {
    for (let at = pid, hops = 0; hops < 64; hops += 1) {
      if (at === root) {
        total += p.cpuS;
        break;
      }
      const parent = table.get(at)?.ppid;
      if (parent === undefined || parent <= 1) break;
      at = parent;
    }
  }
  return total;
}

/**
 * The PostgreSQL server's postmaster: the parent of its checkpointer, a process that lives as
 * long as the server (null when the server is not on this machine).
 */
async function postmasterPid(): Promise<number | null> {
  const rows = await sql(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'`);
  if (rows.length === 0) return null;
  const stat = await readFile(`/proc/${Number(rows[0].pid)}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** CPU of the server's process tree, PostgreSQL's and this load generator's, now. */
async function cpuNow(serverPid: number, postmaster: number | null) {
  const table = await processTable();
  const own = process.cpuUsage();
  return {
    server: treeCpuS(table, serverPid),
    postgres: postmaster === null ? null : treeCpuS(table, postmaster),
    load: (own.user + own.system) / 1e6,
  };
}

/** CPU µs per 2xx request, split, between two cpuNow readings. */
function cpuSplit(
  before: Awaited<ReturnType<typeof cpuNow>>,
  after: Awaited<ReturnType<typeof cpuNow>>,
  ok: number,
): string {
  const per = (
    a: number | null,
    b: number | null,
  ) => (a === null || b === null ? 'n/a' : ((b - a) * 1e6 / ok).toFixed(0));
  return `server ${per(before.server, after.server)} · PostgreSQL ${
    per(before.postgres, after.postgres)
  } · load generator ${per(before.load, after.load)}`;
}

async function stop(child: ChildProcess): Promise<void> {
  // gone already (an exit code, or a signal: the baseline server does not catch SIGTERM)
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

type Device = { uuid: string; key: string };

/**
 * Whether report `n` changes state: every one in worst-case mode; in fleet-mix mode
 * `stateChangePercent` of them, spread evenly (a multiplicative hash of n, so every device gets
 * some).
 */
const changesState = (n: number): boolean =>
  !fleetMix || ((Math.imul(n + 1, 2654435761) >>> 0) % 100) < stateChangePercent;

/**
 * Report `n` of a device: its apps (as the first report set them), a system field that is
 * state (`local_ip`, new when the report changes state) and metrics that change every time
 * (cpu, memory, uptime). Metrics alone append no event (issue #15), so a report is an event
 * exactly when it changes state.
 */
function report(device: Device, n: number): string {
  return JSON.stringify({
    [device.uuid]: {
      apps: {
        '1000': {
          status: 'running',
          containerId: 'c0ffee1234',
          services: { main: { status: 'running', image: 'registry.example/app:1.4.2' } },
        },
        '1001': { status: 'running', containerId: 'beef5678' },
      },
      ip_address: '10.0.3.17',
      // state: set by the first report (n = -1), new in a report that changes state, left out
      // (so unchanged: system fields merge) in one that changes only metrics
      ...(n < 0
        ? { local_ip: '10.255.255.255' }
        : changesState(n)
        ? { local_ip: `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}` }
        : {}),
      os_version: 'balenaOS 5.1.20',
      uptime: 3600 + n,
      cpu_usage: Math.round(Math.random() * 10000) / 100,
      memory_usage: Math.round(Math.random() * 10000) / 100,
      storage_usage: 41.3,
      cpu_temp: 48.5,
    },
  });
}

/** Reports numbered from here in the warm-up, so that the measured ones (from 0) are new to their devices. */
const WARMUP_FIRST = 50_000_000;

async function drive(port: number, devices: Device[], durationS = duration, first = 0): Promise<LoadResult> {
  return runLoad({
    port,
    connections,
    durationMs: durationS * 1000,
    rate,
    next: (i) => {
      const n = first + i;
      const device = devices[i % devices.length]!;
      return {
        method: 'PATCH',
        path: '/api/v1/device/state',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${device.key}` },
        body: report(device, n),
        tag: changesState(n) ? 'state' : 'metrics',
      };
    },
  });
}

/** Prints a run; `samples` (devicetrail) also checks the events against the reports that changed state. */
function summary(
  name: string,
  r: LoadResult,
  stored: number,
  rss: number | null,
  samples?: number,
  cpu?: string,
) {
  const errors = r.non2xx + r.errors;
  // the baseline stores a row per request, whatever the report says
  const perReport = !fleetMix || samples === undefined;
  // every report changes state (worst case), or those tagged 'state' (fleet mix)
  const changes = r.okByTag === undefined || !fleetMix ? r.ok : (r.okByTag['state'] ?? 0);
  console.log(`\n${name}`);
  console.log(
    `  requests/s (2xx)  ${(r.ok / r.durationS).toFixed(0)}   [${r.ok} ok in ${
      r.durationS.toFixed(1)
    } s, ${connections} connections${rate ? `, paced at ${rate}/s` : ''}]`,
  );
  console.log(`  latency ms        p50 ${r.p50}  p90 ${r.p90}  p99 ${r.p99}  max ${r.max}`);
  console.log(`  errors            ${errors}  (statuses ${JSON.stringify(r.statuses)})`);
  console.log(
    !perReport
      ? `  events stored     ${stored}  (${
        stored === changes ? 'equals' : 'DIFFERS FROM'
      } the ${changes} 2xx reports that changed state; ${r.ok - changes} changed only metrics)`
      : `  events stored     ${stored}  (${stored === r.ok ? 'equals' : 'DIFFERS FROM'} 2xx responses)`,
  );
  if (samples !== undefined) {
    console.log(`  metrics samples   ${samples}  (${samples === r.ok ? 'equals' : 'DIFFERS FROM'} 2xx responses)`);
  }
  if (rss !== null) console.log(`  server peak RSS   ${rss} MB`);
  if (cpu !== undefined) console.log(`  CPU µs / request  ${cpu}  (from /proc, over the measured run)`);
  return r.ok / r.durationS;
}

console.log(
  `machine: ${cpus().length} cores (${cpus()[0]?.model}), ${
    Math.round(totalmem() / 2 ** 30)
  } GiB, node ${process.version}`,
);
console.log(
  `synchronous_commit = ${(await sql('SHOW synchronous_commit'))[0].synchronous_commit}, fsync = ${
    (await sql('SHOW fsync'))[0].fsync
  }`,
);
try {
  // devicetrail
  const port = await freePort();
  const service = await startProcess('app/main.ts', port);
  const admin = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
  const base = `http://127.0.0.1:${port}/api/v1`;
  const keyResponse = await fetch(`${base}/provisioning-keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ fleet_id: 'bench' }),
  });
  const provisioningKey = ((await keyResponse.json()) as { key: string }).key;
  const devices: Device[] = Array.from(
    { length: deviceCount },
    () => ({ uuid: crypto.randomUUID(), key: `bench-${randomBytes(16).toString('hex')}` }),
  );
  const t0 = Date.now();
  for (let start = 0; start < devices.length; start += 50) {
    await Promise.all(
      devices.slice(start, start + 50).map(async (d) => {
        const r = await fetch(`${base}/device/register`, {
          method: 'POST',
          headers: { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            uuid: d.uuid,
            deviceName: `bench-${d.uuid.slice(0, 8)}`,
            deviceType: 'rpi4',
            deviceApiKey: d.key,
          }),
        });
        if (r.status !== 201) throw new Error(`register: ${r.status} ${await r.text()}`);
      }),
    );
  }
  console.log(`provisioned ${devices.length} devices in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (fleetMix) {
    // each device's first report sets its apps (a state change for all): made before the clock starts
    const t1 = Date.now();
    for (let start = 0; start < devices.length; start += 50) {
      await Promise.all(
        devices.slice(start, start + 50).map(async (d) => {
          const r = await fetch(`${base}/device/state`, {
            method: 'PATCH',
            headers: { authorization: `Bearer ${d.key}`, 'content-type': 'application/json' },
            body: report(d, -1),
          });
          if (r.status !== 200) throw new Error(`first report: ${r.status} ${await r.text()}`);
        }),
      );
    }
    console.log(`first report of each device in ${((Date.now() - t1) / 1000).toFixed(1)} s (not measured)`);
  }
  if (warmup > 0) {
    const w = await drive(port, devices, warmup, WARMUP_FIRST);
    console.log(`warm-up: ${warmup} s, ${w.ok} reports (not measured)`);
  }
  const postmaster = await postmasterPid();
  const samplesBefore = Number((await sql(`SELECT count(*) AS n FROM device_metrics`))[0].n);
  const before = Number(
    (await sql(`SELECT count(*) AS n FROM events WHERE event_type = 'current_state.updated'`))[0].n,
  );
  const cpuBefore = await cpuNow(service.pid!, postmaster);
  const result = await drive(port, devices);
  const cpuAfter = await cpuNow(service.pid!, postmaster);
  const rss = await treePeakRssMb(service.pid!);
  const stored =
    Number((await sql(`SELECT count(*) AS n FROM events WHERE event_type = 'current_state.updated'`))[0].n) - before;
  const samples = Number((await sql(`SELECT count(*) AS n FROM device_metrics`))[0].n) - samplesBefore;
  const overMqtt = args.transport === 'mqtt'
    ? await benchMqtt({
      databaseUrl: url,
      hasher: createCredentialHasher((await readFile(path.join(dataDir, 'credential-pepper'), 'utf8')).trim()),
      broker: `mqtt://127.0.0.1:${mqttPort}`,
      apiBase: base,
      adminToken: admin,
      devices,
      concurrency: connections,
      durationMs: duration * 1000,
      rate,
      payload: (i, device) => report(device, i),
      tag: (i) => (changesState(i) ? 'state' : 'metrics'),
      // numbered after the HTTP run's reports, so that each one is new to its device
      firstIndex: 10_000_000,
      targetSamples: Number(args['target-samples']),
    })
    : null;
  await stop(service);
  const gaps = Number(
    (await sql(
      `SELECT count(*) AS n FROM (SELECT aggregate_id, max(aggregate_version) - count(*) AS gap FROM events WHERE aggregate_type = 'device' GROUP BY aggregate_id) g WHERE gap <> 0`,
    ))[0].n,
  );
  console.log(
    `\nmode: ${args.mode}${
      fleetMix
        ? ` (${stateChangePercent} % of reports change state, the rest only metrics)`
        : ' (every report changes state)'
    }`,
  );
  const devicetrailRate = summary(
    'devicetrail  PATCH /api/v1/device/state',
    result,
    stored,
    rss,
    samples,
    cpuSplit(cpuBefore, cpuAfter, result.ok),
  );
  console.log(`  version gaps      ${gaps} devices`);
  if (overMqtt !== null) {
    summary(
      'devicetrail  MQTT iot/device/<uuid>/state, QoS 1 (PUBACK after commit)',
      overMqtt.load,
      overMqtt.stored,
      null,
      overMqtt.samples,
    );
    console.log(`  connections       ${devices.length} (one per device; ${connections} reports in flight at most)`);
    console.log(overMqtt.targets);
  }
  // rows rewritten per report, updated in place (HOT) when their page has room (migration 007)
  await new Promise((resolve) => setTimeout(resolve, 1_500)); // statistics reach pg_stat a moment after the commits
  const hot = await sql(
    `SELECT relname, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname IN ('devices', 'streams') ORDER BY relname`,
  );
  console.log(
    `  in-place updates  ${
      hot.map((h) =>
        `${h.relname} ${Number(h.upd) > 0 ? Math.round((100 * Number(h.hot)) / Number(h.upd)) : 0} % of ${h.upd}`
      ).join(', ')
    } (HOT)`,
  );

  if (!args['skip-baseline']) {
    const basePort = await freePort();
    const baseline = await startProcess('bench/baseline-server.ts', basePort);
    if (warmup > 0) await drive(basePort, devices, warmup, WARMUP_FIRST);
    const baseBefore = Number((await sql('SELECT count(*) AS n FROM baseline_events'))[0].n);
    const baseCpuBefore = await cpuNow(baseline.pid!, postmaster);
    const baseResult = await drive(basePort, devices);
    const baseCpuAfter = await cpuNow(baseline.pid!, postmaster);
    const baseRss = await peakRssMb(baseline.pid!);
    await stop(baseline);
    const baseStored = Number((await sql('SELECT count(*) AS n FROM baseline_events'))[0].n) - baseBefore;
    const baselineRate = summary(
      'baseline  one INSERT per request (a row per report)',
      baseResult,
      baseStored,
      baseRss,
      undefined,
      cpuSplit(baseCpuBefore, baseCpuAfter, baseResult.ok),
    );
    console.log(`\nratio devicetrail ÷ baseline = ${(devicetrailRate / baselineRate).toFixed(2)}`);
  }
} finally {
  for (const child of children) await stop(child);
  await adminQuery(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
}
