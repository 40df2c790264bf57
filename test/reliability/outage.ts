// `npm run test:outage`: the database goes away under load and comes back; the service
// fails fast, says it is not ready, recovers by itself, and loses nothing it acknowledged.
//
// The service (app/main.ts, a child process) runs on a PostgreSQL server this driver starts
// and controls: the embedded server (the same binaries `npm start` uses) in a temporary
// directory. Under ingest load the server is taken away for OUTAGE_MS (~10 s) in each mode:
//   stop   fast shutdown (what a restart, an upgrade or a managed failover does): sessions are
//          terminated, new connections refused;
//   crash  SIGKILL of the postmaster and every backend (an OOM kill, a host crash without disk
//          loss): no goodbye at all, and crash recovery from the WAL on restart;
//   freeze SIGSTOP of every server process (a hung host or a network partition): connections
//          stay open and nothing answers; only the service's own deadlines (REQUEST_TIMEOUT,
//          set to 8 s here, the pool's 5 s wait for a connection, the connect timeout) end a
//          request. SIGCONT ends it.
// Then the server is started again on the same data directory and port (or continued).
// Checked from the outside: during the outage every answer is 503 with Retry-After and a JSON
// error, and every request sent meanwhile is answered within FAIL_FAST_MS; /readyz answers 503
// naming the database; afterwards requests succeed and /readyz is 200 again with the same
// service process (no restart); every request that got a 2xx has its events (store-check.ts).
//   npm run test:outage [-- --modes stop,crash,freeze --outage-ms 10000 --devices 60 --connections 12
//                          --request-timeout-ms 8000 --debug]
// (--debug prints slow answers and the service's warnings and errors other than 503 lines)
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../infra/postgres/embedded-server.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { type HttpResponse, send } from './http-client.ts';
import { crashServer, freezeServer } from './postgres-signals.ts';
import { findSecrets } from './secrets.ts';
import { type ServiceProcess, startService, stopService } from './service-process.ts';
import { checkStore, storeIsSound } from './store-check.ts';
import { createWorkload } from './workload.ts';

const { values: args } = parseArgs({
  options: {
    modes: { type: 'string', default: 'stop,crash,freeze' },
    'outage-ms': { type: 'string', default: '10000' },
    devices: { type: 'string', default: '60' },
    connections: { type: 'string', default: '12' },
    'request-timeout-ms': { type: 'string', default: '8000' },
    debug: { type: 'boolean', default: false },
  },
});
type Mode = 'stop' | 'crash' | 'freeze';
const modes = args.modes.split(',').map((m) => m.trim()) as Mode[];
for (const mode of modes) {
  if (!['stop', 'crash', 'freeze'].includes(mode)) throw new Error(`unknown mode ${mode}; use stop, crash, freeze`);
}
const OUTAGE_MS = Number(args['outage-ms']);
// How fast a request sent during the outage must be answered. Stopped or crashed: refused
// connections fail at once, and no caller waits for a pool connection longer than 5 s
// (infra/postgres/gate.ts); the limit is below REQUEST_TIMEOUT, so the deadline cannot hide a
// hang. Frozen: a request already talking to the server waits for REQUEST_TIMEOUT (8 s here,
// longer than /readyz's own 3 s check, so readiness answers with its checks).
const REQUEST_TIMEOUT_MS = Number(args['request-timeout-ms']);
const FAIL_FAST_MS = { stop: 6000, crash: 6000, freeze: REQUEST_TIMEOUT_MS + 2000 } as const;
const POOL_SIZE = 6;

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (line: string) => console.log(`[outage ${elapsed()}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let thaw: () => void = () => {};

async function takeDown(server: EmbeddedPostgres, mode: Mode): Promise<void> {
  if (mode === 'stop') await server.stop();
  else if (mode === 'crash') await crashServer(server);
  else thaw = await freezeServer(server);
}

type Sample = {
  at: number;
  route: string;
  status: number | 'network error';
  ms: number;
  retryAfter: string | undefined;
  code: string | undefined;
};

const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-outage-'));
await chmod(dir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
const pgPort = await freePort();
const port = await freePort();
const startDatabase = () =>
  startEmbeddedPostgres({
    dataDir: path.join(dir, 'pg'),
    stateDir: dir,
    port: pgPort,
    database: 'devicetrail',
    log: () => {},
  });
let database = await startDatabase();
let service: ServiceProcess | null = null;
let exitCode = 1;
const failures: string[] = [];
const expect = (ok: boolean, message: string) => {
  if (!ok) failures.push(message);
};
try {
  service = await startService({
    port,
    // a pool smaller than the load's concurrency: when the server goes, every pooled
    // connection is busy, and each must be given up and replaced afterwards
    env: {
      DATABASE_URL: database.url,
      DATA_DIR: dir,
      DB_POOL_SIZE: String(POOL_SIZE),
      REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS}ms`,
      REPORT_RATE_LIMIT: 'off',
      REGISTER_RATE_LIMIT: 'off',
      DEVICE_EVENTS_RATE_LIMIT: 'off',
    },
  });
  const pid = service.pid;
  const base = service.baseUrl;
  const adminToken = (await readFile(path.join(dir, 'admin-token'), 'utf8')).trim();
  const key = await send(base, {
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    headers: { Authorization: `Bearer ${adminToken}` },
    body: { fleet_id: 'outage-test' },
  });
  if (key.status !== 201) throw new Error(`provisioning key: ${key.status} ${key.text}`);
  const samples: Sample[] = [];
  const workload = createWorkload({
    baseUrl: () => base,
    adminToken,
    provisioningKey: key.json.key,
    initialDevices: Number(args.devices),
    maxDevices: Number(args.devices),
    connections: Number(args.connections),
    timeoutMs: 60_000,
    onResponse: (request, response) =>
      samples.push(
        response instanceof Error
          ? {
            at: request.at,
            route: `${request.method} ${request.path}`,
            status: 'network error',
            ms: Date.now() - request.at,
            retryAfter: undefined,
            code: response.message,
          }
          : {
            at: request.at,
            route: `${request.method} ${request.path}`,
            status: response.status,
            ms: response.ms,
            retryAfter: response.headers['retry-after'] as string | undefined,
            code: response.json?.error?.code,
          },
      ),
  });
  await workload.provision();
  workload.start();
  log(
    `service pid ${pid} on ${base}, PostgreSQL pid ${database.pid} on 127.0.0.1:${pgPort}; ${args.devices} devices, ${args.connections} connections`,
  );

  const readiness: { at: number; status: number; database: unknown; ms: number }[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const at = Date.now();
      const r: HttpResponse | null = await send(base, { method: 'GET', path: '/readyz' }, { timeoutMs: 20_000 }).catch(
        () => null,
      );
      readiness.push({ at, status: r?.status ?? 0, database: r?.json?.checks?.database, ms: Date.now() - at });
      await sleep(250);
    }
  })();

  for (const mode of modes) {
    await sleep(3000);
    const steady = samples.filter((s) => s.at > Date.now() - 2000);
    expect(steady.some((s) => s.status === 200), `${mode}: no successful request before the outage`);
    const down = Date.now();
    await takeDown(database, mode);
    const downDone = Date.now();
    log(`${mode}: PostgreSQL down (took ${downDone - down} ms); staying down ${OUTAGE_MS} ms`);
    await sleep(OUTAGE_MS);
    const upStart = Date.now();
    if (mode === 'freeze') {
      thaw();
      thaw = () => {};
    } else database = await startDatabase();
    const up = Date.now();
    log(`${mode}: PostgreSQL up again (pid ${database.pid}, started in ${up - upStart} ms)`);
    // recovery: the first 2xx request sent after the server is back, and /readyz 200
    let recoveredAt: number | null = null;
    let readyAt: number | null = null;
    for (let i = 0; i < 600 && (recoveredAt === null || readyAt === null); i += 1) {
      recoveredAt ??= samples.find((s) => s.at >= up && typeof s.status === 'number' && s.status < 300)?.at ?? null;
      readyAt ??= readiness.find((r) => r.at >= up && r.status === 200)?.at ?? null;
      await sleep(100);
    }
    await sleep(3000);

    // every answer given while the server was fully down (also to requests sent before)
    const during = samples.filter((s) => s.at + s.ms >= downDone + 100 && s.at + s.ms <= upStart);
    // every request sent while the server was down, also those answered only after it was back:
    // none may have waited longer than the mode's limit
    const limit = FAIL_FAST_MS[mode];
    const sentDuring = samples.filter((s) => s.at >= downDone && s.at < upStart);
    // those in flight while it was going down may be caught in the teardown (a connection
    // attempt the dying server accepted and never answered): REQUEST_TIMEOUT bounds them
    const caught = samples.filter((s) => s.at < downDone && s.at + s.ms > down);
    const caughtSlowest = Math.max(0, ...caught.map((s) => s.ms));
    const statuses: Record<string, number> = {};
    for (const s of during) statuses[String(s.status)] = (statuses[String(s.status)] ?? 0) + 1;
    const not503 = during.filter((s) => s.status !== 503);
    const no503Headers = during.filter((s) =>
      s.status === 503 &&
      (s.retryAfter === undefined || !['database_unavailable', 'request_timeout'].includes(s.code ?? ''))
    );
    const slowest = Math.max(0, ...sentDuring.map((s) => s.ms));
    const ms = sentDuring.map((s) => s.ms).sort((a, b) => a - b);
    const p50 = ms[Math.floor(ms.length / 2)] ?? 0;
    const readyDuring = readiness.filter((r) => r.at >= downDone && r.at + r.ms <= upStart);
    const after = samples.filter((s) => recoveredAt !== null && s.at >= recoveredAt + 1000 && s.at < Date.now() - 100);
    const failingAfter = after.filter((s) => s.status !== 200 && s.status !== 201 && s.status !== 403);
    console.log('');
    console.log(`outage "${mode}": PostgreSQL down ${upStart - downDone} ms`);
    console.log(
      `  requests during it  ${sentDuring.length} sent, ${during.length} answered  (statuses ${
        JSON.stringify(statuses)
      })`,
    );
    console.log(
      `  answer time         p50 ${p50.toFixed(0)} ms, max ${
        slowest.toFixed(0)
      } ms (limit ${limit} ms); ${caught.length} caught going down: max ${caughtSlowest.toFixed(0)} ms (limit ${
        REQUEST_TIMEOUT_MS + 2000
      } ms)`,
    );
    console.log(
      `  /readyz during it   ${readyDuring.length} polls, ${
        readyDuring.filter((r) => r.status === 503).length
      } answered 503, slowest ${Math.max(0, ...readyDuring.map((r) => r.ms))} ms`,
    );
    console.log(
      `  recovered           first 2xx ${
        recoveredAt === null ? 'NEVER' : `${recoveredAt - up} ms`
      } after PostgreSQL was back, /readyz 200 after ${
        readyAt === null ? 'NEVER' : `${readyAt - up} ms`
      }; same service pid: ${service.child.exitCode === null && service.pid === pid}`,
    );
    console.log(
      `  after recovery      ${after.length} requests, ${failingAfter.length} neither 2xx nor 403 (disabled device)`,
    );
    // frozen, each connection waits out a deadline: fewer requests
    const enough = mode === 'freeze' ? Math.ceil(Number(args.connections) / 2) : 20;
    if (args.debug) {
      for (const s of [...caught, ...sentDuring].filter((x) => x.ms > 1000)) {
        console.log(
          `  slow: ${s.route} sent ${s.at - downDone} ms into the outage, answered in ${
            Math.round(s.ms)
          } ms (${s.code})`,
        );
      }
    }
    expect(sentDuring.length >= enough, `${mode}: only ${sentDuring.length} requests during the outage`);
    expect(
      Object.keys(workload.stats.statuses).every((s) => s === '503' || Number(s) < 500),
      `${mode}: 5xx answers other than 503 so far: ${JSON.stringify(workload.stats.statuses)}`,
    );
    expect(
      not503.length === 0,
      `${mode}: answers other than 503 during the outage: ${JSON.stringify(not503.slice(0, 5))}`,
    );
    expect(
      no503Headers.length === 0,
      `${mode}: 503 without Retry-After or code database_unavailable: ${JSON.stringify(no503Headers.slice(0, 3))}`,
    );
    expect(slowest <= limit, `${mode}: a request sent during the outage took ${slowest.toFixed(0)} ms to be answered`);
    expect(
      caughtSlowest <= REQUEST_TIMEOUT_MS + 2000,
      `${mode}: a request in flight as the server went down took ${caughtSlowest.toFixed(0)} ms to be answered`,
    );
    expect(
      readyDuring.length > 0 &&
        readyDuring.every((r) => r.status === 503 && (r.database as { ok?: boolean } | undefined)?.ok === false),
      `${mode}: /readyz did not say "database not ready" throughout: ${JSON.stringify(readyDuring.slice(0, 3))}`,
    );
    expect(recoveredAt !== null && readyAt !== null, `${mode}: the service did not recover`);
    expect(
      service.child.exitCode === null && service.pid === pid,
      `${mode}: the service process exited (${service.child.exitCode ?? service.child.signalCode}): ${
        service.output().stderr.slice(-3000)
      }`,
    );
    expect(failingAfter.length === 0, `${mode}: failures after recovery: ${JSON.stringify(failingAfter.slice(0, 5))}`);
  }
  polling = false;
  await poller;
  await workload.stop();
  const exit = await stopService(service);
  expect(exit.code === 0, `the service did not stop cleanly: ${exit.code ?? exit.signal}`);
  if (args.debug) console.log(service.output().stderr.slice(-20_000));
  if (args.debug) {
    for (const l of service.output().lines) {
      if (/"level":"(error|fatal|warn)"/.test(l) && !/"status":503/.test(l)) console.log(l.slice(0, 1500));
    }
  }
  const report = await checkStore(database.url, workload.acks);
  const leaks = findSecrets([adminToken, key.json.key, ...workload.devices.map((d) => d.key)], [{
    name: 'service logs',
    text: service.output().lines.join('\n'),
  }]);
  console.log('');
  console.log(`outage test: ${modes.length} outage(s) of ${OUTAGE_MS} ms under load`);
  console.log(
    `  requests sent      ${workload.stats.sent}  (statuses ${
      Object.entries(workload.stats.statuses).map(([s, n]) => `${s}:${n}`).join(' ')
    }; ${workload.stats.networkErrors} network errors)`,
  );
  console.log(`  requests acked     ${report.acked}`);
  console.log(`  events found       ${report.eventsFound} of ${report.eventsPromised} promised`);
  console.log(`  missing            ${report.missing}`);
  console.log(`  metrics samples    ${report.samplesPromised} acknowledged, ${report.missingSamples} missing`);
  console.log(
    `  gaps, broken chains, read model ≠ fold: ${report.gaps}, ${report.brokenChains}, ${report.foldMismatches}`,
  );
  for (const p of [...report.problems, ...leaks]) console.log(`  PROBLEM ${p}`);
  expect(storeIsSound(report), 'the store lost or garbled acknowledged events');
  expect(leaks.length === 0, 'secrets in the logs');
  expect(workload.stats.networkErrors === 0, `${workload.stats.networkErrors} requests got no HTTP answer at all`);
  service = null;
  for (const f of failures) console.log(`  FAILED ${f}`);
  console.log(failures.length === 0 ? `outage test passed in ${elapsed()}` : `outage test FAILED in ${elapsed()}`);
  exitCode = failures.length === 0 ? 0 : 1;
} catch (error) {
  console.error(`outage test FAILED: ${(error as Error).stack ?? String(error)}`);
  if (service !== null) console.error(service.output().lines.slice(-30).join('\n'));
} finally {
  thaw();
  if (service !== null) await stopService(service, 5000);
  await database.stop();
  await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
