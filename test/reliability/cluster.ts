// `npm run test:cluster` (issue #19): many instances, one database. Starts three service
// instances (app/main.ts, WORKERS=1 each unless --workers) on loopback ports against one
// PostgreSQL (a fresh database on DATABASE_URL's server, else the scratch server the tests
// use: testcontainers or the embedded one), spreads load from 1,000 devices across them
// (the crash drill's workload: reports, registrations, device events, target updates,
// active toggles; a round robin over the instances that are up, as a load balancer would),
// SIGKILLs the instance that started first (it holds the leader locks) mid-load, restarts it,
// lets the load run on, then lets every device fall silent so the connectivity sweepers of
// all three instances race to mark each one lost. Then checks from SQL:
//
// - nothing acknowledged is missing, versions are gapless, hash chains intact, every read
//   model equals the fold of its events (test/reliability/store-check.ts, and `replay verify`);
// - each sweeper decision is made once: per stream, device.connection_lost and
//   device.connection_restored alternate (never lost twice in a row), and a reconciliation is
//   closed (completed or failed) at most once per start;
// - each webhook delivery is made once: a loopback receiver counts deliveries per event id;
//   every event of the subscribed types has one delivery row, received once (a second
//   receipt is tolerated only as the at-least-once redelivery of an attempt the SIGKILL cut
//   off, and listed);
// - one active listener per name while the three run: each leader lock is held by one
//   session, the other instances' sessions stand by.
//
// Prints a summary with figures; exits 1 on any violation. Bounded: --devices (1000),
// --connections (24), --before-ms / --after-ms of load around the kill (5000 / 5000), and a
// settle phase of at most 60 s.
//   npm run test:cluster [-- --devices 1000 --connections 24 --workers 1]
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { redactUrl } from '../../infra/postgres/pool.ts';
import { adminQuery, databaseUrl, freePort, startScratchServer } from '../../infra/postgres/scratch-server.ts';
import { send } from './http-client.ts';
import { type ServiceProcess, startService, stopService } from './service-process.ts';
import { checkStore } from './store-check.ts';
import { createWorkload } from './workload.ts';

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '24' },
    workers: { type: 'string', default: '1' },
    'before-ms': { type: 'string', default: '5000' },
    'after-ms': { type: 'string', default: '5000' },
  },
});
const deviceCount = Number(args.devices);
const connections = Number(args.connections);
const beforeMs = Number(args['before-ms']);
const afterMs = Number(args['after-ms']);
const INSTANCES = 3;
const SETTLE_MS = 60_000;
const WEBHOOK_TYPES = ['device.connection_lost', 'device.connection_restored', 'reconciliation.failed'];

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (line: string) => console.log(`[cluster ${elapsed()}] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loopback webhook receiver: every delivery by event id, with its attempt number and time. */
async function startReceiver() {
  const receipts = new Map<string, { at: number; attempt: number }[]>();
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      // the body is the event as the feed serves it: its event_id names it
      let eventId = '';
      try {
        eventId = String((JSON.parse(body) as { event_id?: unknown }).event_id ?? '');
      } catch { /* counted under '' */ }
      const attempt = Number(req.headers['x-devicetrail-attempt'] ?? 0);
      const list = receipts.get(eventId) ?? [];
      list.push({ at: Date.now(), attempt });
      receipts.set(eventId, list);
      res.writeHead(204).end();
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}/hook`, receipts, close: () => new Promise((r) => server.close(r)) };
}

const scratch = await startScratchServer(process.env, log);
const database = `dt_cluster_${randomBytes(4).toString('hex')}`;
await adminQuery(`CREATE DATABASE ${database}`, scratch.adminUrl);
const url = databaseUrl(database, scratch.adminUrl);
const dataDirs: string[] = [];
const sharedPepper = randomBytes(32).toString('base64url');
const sharedSecretsKey = randomBytes(32).toString('hex');
const instances: (ServiceProcess | null)[] = Array.from({ length: INSTANCES }, () => null);
const ports = await Promise.all(Array.from({ length: INSTANCES }, () => freePort()));
const receiver = await startReceiver();
let exitCode = 1;

async function startInstance(i: number): Promise<ServiceProcess> {
  const dataDir = dataDirs[i] ?? await mkdtemp(path.join(tmpdir(), `devicetrail-cluster-${i}-`));
  dataDirs[i] = dataDir;
  await chmod(dataDir, 0o700);
  const service = await startService({
    port: ports[i]!,
    env: {
      DATABASE_URL: url,
      DATA_DIR: dataDir,
      // instances on one database share the credential pepper and the secrets key (docs/OPERATIONS.md)
      CREDENTIAL_PEPPER: sharedPepper,
      SECRETS_KEY: sharedSecretsKey,
      WORKERS: args.workers,
      // the load hammers few endpoints from one process: rate limits would only refuse it
      REPORT_RATE_LIMIT: 'off',
      REGISTER_RATE_LIMIT: 'off',
      DEVICE_EVENTS_RATE_LIMIT: 'off',
      // the sweepers decide often and soon, so all three instances race on the same devices
      CONNECTIVITY_TIMEOUT: '4s',
      RECONCILIATION_TIMEOUT: '2s',
      SWEEP_INTERVAL: '300ms',
      LISTENER_POLL_MS: '200',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_TIMEOUT_MS: '2000',
      WEBHOOK_RETRY_BASE_MS: '200',
      SNAPSHOT_EVERY: '20',
      SNAPSHOT_INTERVAL: '1s',
      LOG_REQUESTS: 'false', // (LOG_LEVEL stays info: the driver waits for "listening on")
      DB_POOL_SIZE: '10',
    },
  });
  instances[i] = service;
  return service;
}

/** Leader locks held now, the listener sessions open, and locks held by more than one session. */
async function leadership(client: pg.Client) {
  const { rows } = await client.query<{ holders: number; names: number; sessions: number }>(`
    SELECT count(*)::int AS holders, count(DISTINCT objid)::int AS names,
           (SELECT count(*)::int FROM pg_stat_activity
             WHERE application_name = 'devicetrail-listener' AND datname = current_database()) AS sessions
      FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid::text::bigint = (hashtext('devicetrail.leader')::bigint + 4294967296) % 4294967296`);
  return rows[0]!;
}

const problems: string[] = [];
try {
  log(
    `database ${database} on ${
      redactUrl(scratch.adminUrl)
    } (${scratch.description}); ${INSTANCES} instances, ${deviceCount} devices, ${connections} connections`,
  );
  // the first instance migrates and writes the bootstrap admin token; the others find both
  await startInstance(0);
  await Promise.all([1, 2].map((i) => startInstance(i)));
  log(`instances on ports ${ports.join(', ')} (pids ${instances.map((s) => s!.pid).join(', ')})`);
  const adminToken = (await readFile(path.join(dataDirs[0]!, 'admin-token'), 'utf8')).trim();
  const admin = { Authorization: `Bearer ${adminToken}` };
  const key = await send(instances[1]!.baseUrl, {
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    headers: admin,
    body: { fleet_id: 'cluster-test' },
  });
  if (key.status !== 201) throw new Error(`creating a provisioning key: ${key.status} ${key.text}`);
  const hook = await send(instances[2]!.baseUrl, {
    method: 'POST',
    path: '/api/v1/webhooks',
    headers: admin,
    body: { url: receiver.url, event_types: WEBHOOK_TYPES },
  });
  if (hook.status !== 201) throw new Error(`creating the webhook: ${hook.status} ${hook.text}`);
  const webhookId = hook.json.id as string;

  // a load balancer: round robin over the instances that are up
  let turn = 0;
  const baseUrl = () => {
    for (let k = 0; k < INSTANCES; k += 1) {
      const service = instances[(turn += 1) % INSTANCES];
      if (service !== null && service !== undefined) return service.baseUrl;
    }
    return instances[0]?.baseUrl ?? `http://127.0.0.1:${ports[0]}`;
  };
  const workload = createWorkload({
    baseUrl,
    adminToken,
    provisioningKey: key.json.key as string,
    initialDevices: deviceCount,
    maxDevices: Math.round(deviceCount * 1.05),
    connections,
    timeoutMs: 60_000,
  });
  await workload.provision();
  log(`provisioned ${deviceCount} devices across the instances`);

  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    workload.start();
    await sleep(beforeMs);
    const before = await leadership(client);
    log(
      `while all three run: ${before.holders} leader locks held (${before.names} names), ${before.sessions} listener sessions`,
    );
    if (before.holders !== before.names || before.holders < 3) {
      problems.push(`leadership: ${before.holders} locks for ${before.names} names (want one holder per name, ≥ 3)`);
    }
    // the other instances' loops stand by on sessions of their own
    if (before.sessions < INSTANCES * before.holders) {
      problems.push(`leadership: ${before.sessions} listener sessions, want ≥ ${INSTANCES * before.holders}`);
    }
    const victim = instances[0]!;
    const killedAt = Date.now();
    victim.kill('SIGKILL');
    await victim.exited;
    instances[0] = null;
    const ackedAtKill = workload.stats.acked;
    log(`SIGKILLed instance 1 (pid ${victim.pid}) after ${beforeMs} ms of load; ${ackedAtKill} requests acked so far`);
    await sleep(1000);
    const during = await leadership(client);
    log(`with instance 1 dead: ${during.holders} leader locks held (${during.names} names)`);
    await startInstance(0);
    log(`instance 1 restarted (pid ${instances[0]!.pid})`);
    await sleep(afterMs);
    await workload.stop();
    log(
      `load stopped: ${workload.stats.sent} requests, ${workload.stats.acked} acked, ${workload.stats.networkErrors} cut off or refused`,
    );
    const after = await leadership(client);
    if (after.holders !== after.names || after.holders !== before.holders) {
      problems.push(`leadership after the restart: ${after.holders} locks for ${after.names} names`);
    }

    // settle: every active device falls silent and is marked lost; webhooks are delivered
    const settleUntil = Date.now() + SETTLE_MS;
    let pending = { connected: -1, deliveries: -1 };
    while (Date.now() < settleUntil) {
      const { rows } = await client.query<{ connected: number; deliveries: number }>(`
        SELECT (SELECT count(*)::int FROM devices WHERE is_active AND NOT connection_lost) AS connected,
               (SELECT count(*)::int FROM webhook_deliveries WHERE status = 'pending') AS deliveries`);
      pending = rows[0]!;
      if (pending.connected === 0 && pending.deliveries === 0) break;
      await sleep(500);
    }
    if (pending.connected !== 0 || pending.deliveries !== 0) {
      problems.push(
        `not settled within ${SETTLE_MS} ms: ${pending.connected} devices still connected, ${pending.deliveries} deliveries pending`,
      );
    }
    // the dispatcher has handed every subscribed event to the webhook
    for (let i = 0; i < 40; i += 1) {
      const { rows } = await client.query<{ missing: number }>(
        `
        SELECT count(*)::int AS missing FROM events e
         WHERE e.event_type = ANY($1)
           AND e."timestamp" >= (SELECT created_at + interval '1 second' FROM webhooks WHERE id = $2)
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = $2 AND d.event_id = e.event_id)`,
        [
          WEBHOOK_TYPES,
          webhookId,
        ],
      );
      if (rows[0]!.missing === 0) break;
      await sleep(250);
    }
    await sleep(500);

    // --- the checks, from SQL
    const store = await checkStore(url, workload.acks);
    const verify = spawnSync(process.execPath, ['--import', 'tsx', 'replay/cli.ts', 'verify', '--json'], {
      env: { ...process.env, DATABASE_URL: url, CREDENTIAL_PEPPER: sharedPepper, SECRETS_KEY: sharedSecretsKey },
      encoding: 'utf8',
      timeout: 120_000,
    });
    const decisions = await client.query<{ aggregate_id: string; types: string[]; reasons: (string | null)[] }>(`
      SELECT aggregate_id, array_agg(event_type ORDER BY aggregate_version) AS types,
             array_agg(data->>'reason' ORDER BY aggregate_version) AS reasons
        FROM events
       WHERE aggregate_type = 'device' AND (event_type LIKE 'device.connection_%' OR event_type LIKE 'reconciliation.%')
       GROUP BY aggregate_id`);
    let lost = 0;
    let restored = 0;
    let timeouts = 0;
    let doubleDecisions = 0;
    for (const row of decisions.rows) {
      let connection: 'up' | 'lost' = 'up';
      let open = false;
      row.types.forEach((type, k) => {
        if (type === 'device.connection_lost') {
          lost += 1;
          if (connection === 'lost') {
            doubleDecisions += 1;
            problems.push(`device ${row.aggregate_id}: connection_lost twice in a row`);
          }
          connection = 'lost';
        } else if (type === 'device.connection_restored') {
          restored += 1;
          if (connection === 'up') problems.push(`device ${row.aggregate_id}: connection_restored without a loss`);
          connection = 'up';
        } else if (type === 'reconciliation.started') {
          open = true;
        } else {
          if (type === 'reconciliation.failed' && row.reasons[k] === 'timeout') timeouts += 1;
          if (!open) {
            doubleDecisions += 1;
            problems.push(`device ${row.aggregate_id}: ${type} closes no open reconciliation`);
          }
          open = false;
        }
      });
    }
    const deliveries = await client.query<{ event_id: string; status: string }>(
      `SELECT event_id, status FROM webhook_deliveries WHERE webhook_id = $1`,
      [webhookId],
    );
    const byStatus: Record<string, number> = {};
    let notReceived = 0;
    let duplicates = 0;
    let redeliveredAfterKill = 0;
    for (const d of deliveries.rows) {
      byStatus[d.status] = (byStatus[d.status] ?? 0) + 1;
      const got = receiver.receipts.get(d.event_id) ?? [];
      if (d.status === 'succeeded' && got.length === 0) {
        notReceived += 1;
        problems.push(`webhook: event ${d.event_id} marked delivered, never received`);
      }
      if (got.length > 1) {
        // an attempt the SIGKILL cut off (received, not yet recorded) is made again once its lease ends
        const cutOff = got.length === 2 && got[0]!.at <= killedAt + 100 && got[0]!.at >= killedAt - 5000 &&
          got[1]!.attempt > got[0]!.attempt;
        if (cutOff) redeliveredAfterKill += 1;
        else {
          duplicates += 1;
          problems.push(`webhook: event ${d.event_id} received ${got.length} times`);
        }
      }
    }
    const unknownReceipts = [...receiver.receipts.keys()].filter((id) =>
      !deliveries.rows.some((d) => d.event_id === id)
    )
      .length;
    if (unknownReceipts > 0) problems.push(`webhook: ${unknownReceipts} receipts for events without a delivery row`);
    if (byStatus['failed'] !== undefined) problems.push(`webhook: ${byStatus['failed']} deliveries failed`);

    // a device's call restores a lost connection (device.connection_restored, carrying the
    // call's request id) besides what it answers: with the short CONNECTIVITY_TIMEOUT here that
    // happens; the checker counts such an event as "extra", which it is not
    let restoredByCall = 0;
    const unexplained: string[] = [];
    for (const problem of store.problems.filter((p) => p.startsWith('extra'))) {
      const m = /request (\S+): answered (\d+) events, (\d+) stored/.exec(problem);
      const restores = m === null ? 0 : Number(
        (await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM events WHERE metadata->>'request_id' = $1 AND event_type = 'device.connection_restored'`,
          [m[1]],
        )).rows[0]!.n,
      );
      if (m !== null && Number(m[3]) - Number(m[2]) === restores) restoredByCall += 1;
      else unexplained.push(problem);
    }
    const storeProblems = store.problems.filter((p) => !p.startsWith('extra') || unexplained.includes(p));
    const storeSound = store.missing === 0 && store.gaps === 0 && store.brokenChains === 0 && store.outOfOrder === 0 &&
      store.foldMismatches === 0 && store.missingSamples === 0 &&
      !storeProblems.some((p) => /^(extra|isolation)/.test(p));
    const statuses = Object.entries(workload.stats.statuses).map(([s, n]) => `${s}:${n}`).join(' ');
    console.log('');
    console.log(
      `cluster test: ${INSTANCES} instances (WORKERS=${args.workers} each), one PostgreSQL, ${
        workload.devices.filter((d) => d.registered).length
      } devices; instance 1 SIGKILLed after ${beforeMs} ms of load and restarted`,
    );
    console.log(
      `  requests sent       ${workload.stats.sent}  (statuses ${statuses}; ${workload.stats.networkErrors} cut off by the kill)`,
    );
    console.log(`  requests acked      ${store.acked}`);
    console.log(`  events promised     ${store.eventsPromised}`);
    console.log(
      `  events found        ${store.eventsFound}  (${store.totalEvents} events in ${store.streams} streams)`,
    );
    console.log(`  missing             ${store.missing}`);
    console.log(
      `  extra events        ${unexplained.length} unexplained (${restoredByCall} answers whose call also restored the device's lost connection)`,
    );
    console.log(`  metrics samples     ${store.samplesPromised} acknowledged, ${store.missingSamples} missing`);
    console.log(`  version gaps        ${store.gaps}`);
    console.log(`  broken hash chains  ${store.brokenChains}`);
    console.log(`  read model ≠ fold   ${store.foldMismatches} of ${store.devices} devices`);
    console.log(
      `  replay verify       exit ${verify.status}${
        verify.status === 0 ? '' : `: ${(verify.stdout + verify.stderr).slice(-500)}`
      }`,
    );
    console.log(
      `  sweeper decisions   ${lost} connection_lost, ${restored} restored, ${timeouts} reconciliation timeouts; ${doubleDecisions} made twice`,
    );
    console.log(
      `  webhook deliveries  ${deliveries.rows.length} rows (${
        Object.entries(byStatus).map(([s, n]) => `${s} ${n}`).join(', ')
      }); ${notReceived} never received, ${duplicates} received twice, ${redeliveredAfterKill} redelivered after the SIGKILL cut an attempt off`,
    );
    console.log(
      `  leader locks        ${before.holders} names, each held by one session of ${before.sessions} listener sessions (3 instances); ${during.holders} held with instance 1 dead, ${after.holders} after its restart`,
    );
    for (const problem of [...storeProblems, ...problems].slice(0, 30)) console.log(`  PROBLEM ${problem}`);
    const sound = storeSound && store.acked > 0 && verify.status === 0 && problems.length === 0 &&
      lost > 0 && deliveries.rows.length > 0;
    console.log(sound ? `cluster test passed in ${elapsed()}` : `cluster test FAILED in ${elapsed()}`);
    exitCode = sound ? 0 : 1;
  } finally {
    await client.end();
  }
} catch (error) {
  console.error(`cluster test FAILED: ${(error as Error).stack ?? String(error)}`);
  for (const service of instances) if (service !== null) console.error(service.output().lines.slice(-10).join('\n'));
} finally {
  await Promise.all(instances.map((service) => (service === null ? undefined : stopService(service, 10_000))));
  await receiver.close();
  await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`, scratch.adminUrl).catch(() => undefined);
  await scratch.stop();
  for (const dir of dataDirs) await rm(dir, { recursive: true, force: true });
}
process.exit(exitCode);
