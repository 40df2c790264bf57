// `npm run test:crash`: nothing acknowledged is lost when the service dies.
//
// Starts the real service (app/main.ts) as a child process on a database of its own,
// drives ingest load from several hundred devices (state reports, registrations,
// device-sent events, target updates, active toggles; each request with its own
// X-Request-Id), SIGKILLs the service at a random moment, restarts it, five times; then
// checks from the outside (SQL) that every request that got a 2xx has the events its answer
// promised, that every stream's versions are 1..n with an intact hash chain, and that every
// device's read model equals the fold of its events. Also greps the service's logs for every
// secret it was given. Prints requests acked, events found, missing; exits 1 on any loss.
//
// Database: with DATABASE_URL (a server where this role may create databases), a fresh
// database on it; otherwise the service's own embedded PostgreSQL in a temporary DATA_DIR,
// which survives each SIGKILL of the service (as it does under `npm start`) and is reused by
// the restarted service.
//   npm run test:crash [-- --kills 5 --devices 300 --connections 24 --min-ms 1500 --max-ms 6000]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { redactUrl } from '../../infra/postgres/pool.ts';
import { adminQuery, databaseUrl } from '../helpers/database.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { send } from './http-client.ts';
import { findSecrets } from './secrets.ts';
import { type ServiceProcess, startService, stopService } from './service-process.ts';
import { checkStore, storeIsSound } from './store-check.ts';
import { createWorkload } from './workload.ts';

const { values: args } = parseArgs({
  options: {
    kills: { type: 'string', default: '5' },
    devices: { type: 'string', default: '300' },
    connections: { type: 'string', default: '24' },
    'min-ms': { type: 'string', default: '1500' },
    'max-ms': { type: 'string', default: '6000' },
  },
});
const kills = Number(args.kills);
const deviceCount = Number(args.devices);
const connections = Number(args.connections);
const minMs = Number(args['min-ms']);
const maxMs = Number(args['max-ms']);

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (line: string) => console.log(`[crash ${elapsed()}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The database the service runs on, how the check reaches it, and how to clean up. */
type Target = {
  serviceEnv: Record<string, string>;
  checkUrl: () => Promise<string>;
  description: string;
  cleanup: () => Promise<void>;
};

async function prepareTarget(dataDir: string): Promise<Target> {
  const server = process.env['DATABASE_URL'];
  if (server !== undefined && server !== '') {
    const name = `dt_crash_${randomBytes(4).toString('hex')}`;
    await adminQuery(`CREATE DATABASE ${name}`, server);
    const url = databaseUrl(name, server);
    return {
      serviceEnv: { DATABASE_URL: url },
      checkUrl: async () => url,
      description: `database ${name} on ${redactUrl(server)} (DATABASE_URL)`,
      cleanup: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, server),
    };
  }
  const port = await freePort();
  const url = async () =>
    `postgres://postgres:${
      encodeURIComponent((await readFile(path.join(dataDir, 'pg-password'), 'utf8')).trim())
    }@127.0.0.1:${port}/devicetrail`;
  return {
    serviceEnv: { EMBEDDED_PG_PORT: String(port) },
    checkUrl: url,
    description: `the service's embedded PostgreSQL (127.0.0.1:${port}, data in ${dataDir})`,
    // the last service stops gracefully, but it reused the server a killed one started, so
    // that server is still running: stop it by the pid in its own pid file
    cleanup: async () => {
      const pidFile = await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').catch(() => null);
      const pid = pidFile === null ? NaN : Number(pidFile.split('\n')[0]);
      if (!Number.isInteger(pid) || pid <= 0) return;
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        return;
      }
      for (let i = 0; i < 300; i += 1) {
        try {
          process.kill(pid, 0);
        } catch {
          return;
        }
        await sleep(100);
      }
      try {
        process.kill(pid, 'SIGKILL');
      } catch { /* gone */ }
    },
  };
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-crash-'));
await chmod(dataDir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
const target = await prepareTarget(dataDir);
const port = await freePort();
const serviceEnv = {
  ...target.serviceEnv,
  DATA_DIR: dataDir,
  // the load hammers few endpoints from few processes: rate limits would only refuse it
  REPORT_RATE_LIMIT: 'off',
  REGISTER_RATE_LIMIT: 'off',
  DEVICE_EVENTS_RATE_LIMIT: 'off',
};
log(
  `database: ${target.description}; service on 127.0.0.1:${port}; ${kills} kills, ${deviceCount} devices, ${connections} connections`,
);

const logLines: string[] = [];
let service: ServiceProcess | null = null;
let exitCode = 1;
try {
  service = await startService({ port, env: serviceEnv });
  const adminToken = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
  const keyResponse = await send(service.baseUrl, {
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    headers: { Authorization: `Bearer ${adminToken}` },
    body: { fleet_id: 'crash-test' },
  });
  if (keyResponse.status !== 201) {
    throw new Error(`creating a provisioning key: ${keyResponse.status} ${keyResponse.text}`);
  }
  const provisioningKey = keyResponse.json.key as string;
  const workload = createWorkload({
    baseUrl: () => service!.baseUrl,
    adminToken,
    provisioningKey,
    initialDevices: deviceCount,
    maxDevices: Math.round(deviceCount * 1.2),
    connections,
    timeoutMs: 60_000,
  });
  await workload.provision();
  log(`provisioned ${deviceCount} devices`);

  const rounds: string[] = [];
  for (let round = 0; round <= kills; round += 1) {
    if (service === null) {
      service = await startService({ port, env: serviceEnv });
      workload.resetConnections();
    }
    const ackedBefore = workload.stats.acked;
    const errorsBefore = workload.stats.networkErrors;
    workload.start();
    if (round < kills) {
      const after = Math.round(minMs + Math.random() * (maxMs - minMs));
      await sleep(after);
      service.kill('SIGKILL');
      const exit = await service.exited;
      await workload.stop();
      logLines.push(...service.output().lines);
      rounds.push(
        `kill ${round + 1}: after ${after} ms of load, ${workload.stats.acked - ackedBefore} acked this round (${
          exit.signal ?? exit.code
        }; ${workload.stats.networkErrors - errorsBefore} requests cut off or refused)`,
      );
      log(rounds[rounds.length - 1]!);
      service = null;
    } else {
      await sleep(3000);
      await workload.stop();
      const exit = await stopService(service);
      logLines.push(...service.output().lines);
      log(`final round: ${workload.stats.acked - ackedBefore} acked, then SIGTERM: exit ${exit.code ?? exit.signal}`);
      service = null;
    }
  }

  // the database as the service left it, checked from the outside
  const report = await checkStore(await target.checkUrl(), workload.acks);
  // and the product's own verifier agrees: every hash chain intact
  const verify = spawnSync(process.execPath, ['--import', 'tsx', 'replay/cli.ts', 'verify', '--json'], {
    env: { ...process.env, DATABASE_URL: await target.checkUrl() },
    encoding: 'utf8',
    timeout: 300_000,
  });
  const secrets = [adminToken, provisioningKey, ...workload.devices.map((d) => d.key)];
  const leaks = findSecrets(secrets, [{ name: 'service logs', text: logLines.join('\n') }]);
  const statuses = Object.entries(workload.stats.statuses).map(([s, n]) => `${s}:${n}`).join(' ');
  console.log('');
  console.log(
    `crash test: ${kills} SIGKILLs under load, ${workload.devices.filter((d) => d.registered).length} devices`,
  );
  console.log(
    `  requests sent      ${workload.stats.sent}  (statuses ${statuses}; ${workload.stats.networkErrors} cut off or refused while down)`,
  );
  console.log(`  requests acked     ${report.acked}`);
  console.log(`  events promised    ${report.eventsPromised}`);
  console.log(
    `  events found       ${report.eventsFound}  (${report.totalEvents} events in ${report.streams} streams)`,
  );
  console.log(`  missing            ${report.missing}`);
  console.log(`  metrics samples    ${report.samplesPromised} acknowledged, ${report.missingSamples} missing`);
  console.log(`  version gaps       ${report.gaps}`);
  console.log(`  broken hash chains ${report.brokenChains}`);
  console.log(`  read model ≠ fold  ${report.foldMismatches} of ${report.devices} devices`);
  console.log(`  secrets in logs    ${leaks.length} (${secrets.length} secrets, ${logLines.length} log lines)`);
  console.log(
    `  replay verify      exit ${verify.status}${
      verify.status === 0 ? '' : `: ${(verify.stdout + verify.stderr).slice(0, 3000)}`
    }`,
  );
  for (const problem of [...report.problems, ...leaks]) console.log(`  PROBLEM ${problem}`);
  // the check itself must be able to fail: one acknowledgement whose events were never
  // written, and one read model altered behind the service's back
  const checkUrl = await target.checkUrl();
  const tamper = new pg.Client({ connectionString: checkUrl });
  await tamper.connect();
  await tamper.query(
    `UPDATE devices SET state = jsonb_set(state, '{device_name}', '"tampered"') WHERE uuid = (SELECT min(uuid) FROM devices)`,
  );
  await tamper.end();
  const control = await checkStore(checkUrl, [...workload.acks, {
    requestId: 'never-sent',
    route: 'self-check',
    aggregateId: 'none',
    minEvents: 1,
    eventIds: [],
    metricsSample: true,
  }]);
  const checkerWorks = control.missing === 1 && control.foldMismatches === 1 && control.missingSamples === 1 &&
    findSecrets(['planted-secret-123'], [{ name: 'x', text: 'a planted-secret-123 here' }]).length === 1;
  console.log(
    `  checker self-test  ${
      checkerWorks ? 'ok' : 'FAILED'
    } (a fabricated ack → missing ${control.missing} and ${control.missingSamples} sample, a tampered read model → ${control.foldMismatches} mismatch, a planted secret is found)`,
  );
  const sound = storeIsSound(report) && leaks.length === 0 && report.acked > 0 && checkerWorks && verify.status === 0;
  console.log(sound ? `crash test passed in ${elapsed()}` : `crash test FAILED in ${elapsed()}`);
  exitCode = sound ? 0 : 1;
} catch (error) {
  console.error(`crash test FAILED: ${(error as Error).stack ?? String(error)}`);
  if (service !== null) console.error(service.output().lines.slice(-20).join('\n'));
} finally {
  if (service !== null) await stopService(service, 5000);
  await target.cleanup().catch((error: unknown) => console.error(`cleanup: ${String(error)}`));
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);
