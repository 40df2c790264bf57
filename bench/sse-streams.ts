// `npm run bench:streams`: what open SSE streams cost a device's writes (issue #16, finding 5:
// "300 open streams with events flowing leave a device write under 50 ms"). Prints figures,
// asserts nothing. Starts the service on a fresh database, lets a fleet report in the
// background, and has one device write back to back, first with no stream open, then with
// `--streams` streams open (a mix: all events, one event type, one device) that read
// everything they are sent, in a process of their own (bench/sse-clients.ts). `--service-root <dir>` runs another checkout's app/main.ts the
// same way (e.g. the commit before the shared feed reader), for comparison; `BENCH_PROFILE=<dir>`
// writes a CPU profile of the service.
// Database: DATABASE_URL (a fresh database is created on that server) or embedded.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type LoadResult, runLoad } from './load.ts';
import { adminQuery, databaseUrl, freePort, startScratchServer } from '../infra/postgres/scratch-server.ts';

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '300' },
    fleet: { type: 'string', default: '50' },
    'fleet-rate': { type: 'string', default: '50' },
    duration: { type: 'string', default: '15' },
    'service-root': { type: 'string' },
  },
});
const streamCount = Number(args.streams);
const fleetSize = Number(args.fleet);
const fleetRate = Number(args['fleet-rate']);
const durationMs = Number(args.duration) * 1000;
const serviceRoot = path.resolve(args['service-root'] ?? '.');

const server = await startScratchServer(process.env, (line) => console.log(line));
const dbName = `dt_bench_${randomBytes(4).toString('hex')}`;
await adminQuery(`CREATE DATABASE ${dbName}`, server.adminUrl);
const url = databaseUrl(dbName, server.adminUrl);
const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-bench-'));

async function transactionsSoFar(): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
    );
    return Number(rows[0].n);
  } finally {
    await client.end();
  }
}

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
      REGISTER_RATE_LIMIT: '1000000/1m',
      SSE_MAX_STREAMS: String(streamCount + 10),
      SSE_MAX_STREAMS_PER_TOKEN: String(streamCount + 10),
      WORKERS: process.env['WORKERS'] ?? '1', // one worker unless WORKERS says (stream caps are per worker)
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 600; i += 1) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the service did not start listening');
}

type Device = { uuid: string; key: string };

// every write changes state (a new local_ip), so every write is an event the streams carry:
// metrics alone append no event since issue #15
const report = (device: Device, n: number) =>
  JSON.stringify({
    [device.uuid]: {
      local_ip: `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`,
      uptime: 3600 + n,
      cpu_usage: (n % 10_000) / 100,
      memory_usage: 41.3,
    },
  });

const write = (device: Device, i: number) => ({
  method: 'PATCH',
  path: '/api/v1/device/state',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${device.key}` },
  body: report(device, i),
});

/** The stream clients, in a process of their own (bench/sse-clients.ts); answers the next message of `type`. */
function streamClients() {
  const child = fork(path.join(import.meta.dirname, 'sse-clients.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  // deno-lint-ignore no-explicit-any -- IPC answers are loose JSON
  const ask = (message: object, type: string): Promise<any> =>
    new Promise((resolve) => {
      const onMessage = (answer: { type: string }) => {
        if (answer.type !== type) return;
        child.off('message', onMessage);
        resolve(answer);
      };
      child.on('message', onMessage);
      child.send(message);
    });
  return { child, ask };
}

/** CPU seconds a process has used (user + system), from /proc. */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

/** The service's event-loop delay since the previous call (prom-client resets it on each scrape), ms. */
async function loopDelay(port: number, admin: string): Promise<string> {
  const text =
    await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${admin}` } }))
      .text();
  const value = (name: string) => (Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1]) * 1000).toFixed(1);
  return ['p50', 'p90', 'p99'].map((p) => `${p} ${value(`devicetrail_nodejs_eventloop_lag_${p}_seconds`)}`).join('  ') +
    `  max ${value('devicetrail_nodejs_eventloop_lag_max_seconds')}`;
}

type Measured = { probe: LoadResult; xactPerS: number; serviceCpu: number; benchCpu: number; loop: string };

/** One device writing back to back while the fleet reports at `fleetRate`/s. */
async function measure(port: number, pid: number, admin: string, probe: Device, fleet: Device[]): Promise<Measured> {
  await loopDelay(port, admin);
  const before = await transactionsSoFar();
  const cpuBefore = await cpuSeconds(pid);
  const benchBefore = process.cpuUsage();
  const t0 = performance.now();
  const [probeResult] = await Promise.all([
    runLoad({ port, connections: 1, durationMs, next: (i) => write(probe, i) }),
    runLoad({ port, connections: 8, durationMs, rate: fleetRate, next: (i) => write(fleet[i % fleet.length]!, i) }),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  const bench = process.cpuUsage(benchBefore);
  return {
    probe: probeResult,
    xactPerS: Math.round((await transactionsSoFar() - before) / seconds),
    serviceCpu: (await cpuSeconds(pid) - cpuBefore) / seconds,
    benchCpu: (bench.user + bench.system) / 1e6 / seconds,
    loop: await loopDelay(port, admin),
  };
}

function print(name: string, { probe, xactPerS, serviceCpu, benchCpu, loop }: Measured) {
  console.log(`\n${name}`);
  console.log(
    `  one device, back to back   ${(probe.ok / probe.durationS).toFixed(1)} writes/s  (${probe.ok} ok, ${
      probe.non2xx + probe.errors
    } failed)`,
  );
  console.log(`  write latency ms           p50 ${probe.p50}  p90 ${probe.p90}  p99 ${probe.p99}  max ${probe.max}`);
  console.log(`  service event-loop delay   ${loop} ms`);
  console.log(`  database transactions/s    ${xactPerS}  (fleet writes included)`);
  console.log(
    `  CPU (cores)                service ${serviceCpu.toFixed(2)}, load generator ${benchCpu.toFixed(2)}`,
  );
}

let service: ChildProcess | null = null;
let clients: ReturnType<typeof streamClients> | null = null;
try {
  console.log(`machine: ${cpus().length} cores, node ${process.version}; service from ${serviceRoot}`);
  const port = await freePort();
  service = await startService(port);
  const admin = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
  const base = `http://127.0.0.1:${port}/api/v1`;
  const keyResponse = await fetch(`${base}/provisioning-keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
    body: JSON.stringify({ fleet_id: 'bench' }),
  });
  const provisioningKey = ((await keyResponse.json()) as { key: string }).key;
  const devices: Device[] = Array.from(
    { length: fleetSize + 1 },
    () => ({ uuid: crypto.randomUUID(), key: `bench-${randomBytes(16).toString('hex')}` }),
  );
  for (const d of devices) {
    const r = await fetch(`${base}/device/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ uuid: d.uuid, deviceName: 'bench', deviceType: 'rpi4', deviceApiKey: d.key }),
    });
    if (r.status !== 201) throw new Error(`register: ${r.status} ${await r.text()}`);
  }
  const [probe, ...fleet] = devices as [Device, ...Device[]];
  console.log(
    `${fleet.length} devices report ${fleetRate}/s in the background; one more writes back to back for ${
      durationMs / 1000
    } s`,
  );

  print('no stream open', await measure(port, service.pid!, admin, probe, fleet));

  const streamsClients = streamClients();
  clients = streamsClients;
  const queries = Array.from(
    { length: streamCount },
    (_, i) =>
      i % 3 === 0 ? '' : i % 3 === 1 ? '?type=current_state.updated' : `?aggregate_id=${fleet[i % fleet.length]!.uuid}`,
  );
  const { statuses } = await clients.ask({ type: 'open', base, admin, queries }, 'opened');
  console.log(
    `\nopened ${streamCount} streams (a third each: all events, one type, one device): ${JSON.stringify(statuses)}`,
  );
  const clientCpuBefore = await cpuSeconds(clients.child.pid!);
  const clientT0 = performance.now();
  const result = await measure(port, service.pid!, admin, probe, fleet);
  print(`${streamCount} streams open`, result);
  const clientCpu = (await cpuSeconds(clients.child.pid!) - clientCpuBefore) / ((performance.now() - clientT0) / 1000);
  const { received, reads } = (await clients.ask({ type: 'report' }, 'report')) as {
    received: number[];
    reads: number[];
  };
  console.log(
    `  events received per stream  min ${Math.min(...received)}  max ${Math.max(...received)}  total ${
      received.reduce((a, b) => a + b, 0)
    } (in ${reads.reduce((a, b) => a + b, 0)} reads); the stream clients' process used ${clientCpu.toFixed(2)} cores`,
  );
  const rss = Number(/VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${service.pid}/status`, 'utf8'))?.[1] ?? 0);
  console.log(`  service peak RSS            ${Math.round(rss / 1024)} MB`);
  const exited = new Promise((resolve) => streamsClients.child.once('exit', resolve));
  streamsClients.child.send({ type: 'close' });
  await exited;
} finally {
  if (clients !== null && clients.child.exitCode === null) clients.child.kill('SIGKILL');
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
