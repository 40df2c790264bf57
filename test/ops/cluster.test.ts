// WORKERS=2 (issue #19), with the real service as a child process on its embedded PostgreSQL:
// the primary starts the database once, two workers share the port, registrations answered
// by either worker carry an MQTT credential (the broker lives in worker 1 only), /metrics
// sums both workers (two pids answered, the total equals the requests made), the background
// jobs run in one process (every listener session holds its lock: nobody stands by), a
// SIGKILLed worker is restarted, and SIGTERM drains every worker: exit 0, and every
// acknowledged request's events are in the store afterwards.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import test from 'ava';
import mqtt from 'mqtt';
import pg from 'pg';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { startEmbeddedPostgres } from '../../infra/postgres/embedded-server.ts';
import { send } from '../reliability/http-client.ts';
import { startService } from '../reliability/service-process.ts';
import { checkStore, storeIsSound } from '../reliability/store-check.ts';
import { createWorkload } from '../reliability/workload.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sums the samples of `name` in a Prometheus text exposition, grouped by `label` (all: ''). */
function samples(text: string, name: string, label?: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const key = label === undefined ? '' : (new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? '');
    out.set(key, (out.get(key) ?? 0) + value);
  }
  return out;
}

test.serial('WORKERS=2: one database, two workers, metrics summed, jobs once, a dead worker restarted, SIGTERM drains with nothing acknowledged lost', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-cluster-'));
  await chmod(dataDir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const pgPort = await freePort();
  const port = await freePort();
  const service = await startService({
    port,
    env: {
      WORKERS: '2',
      DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: String(pgPort),
      MQTT_PORT: String(await freePort()),
      MQTT_HOST: '127.0.0.1',
      REPORT_RATE_LIMIT: 'off',
      REGISTER_RATE_LIMIT: 'off',
      DEVICE_EVENTS_RATE_LIMIT: 'off',
      SHUTDOWN_TIMEOUT_MS: '20000',
    },
  });
  t.teardown(() => service.kill('SIGKILL'));
  const entries = () =>
    service.output().lines.flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  const dump = () => service.output().lines.slice(-40).join('\n') + service.output().stderr.slice(-2000);

  // the primary started the one embedded PostgreSQL; each worker serves
  const pgStarts = entries().filter((e) => /^embedded PostgreSQL: started/.test(String(e['msg'])));
  t.is(pgStarts.length, 1, dump());
  t.is(pgStarts[0]!['worker'], undefined, 'a worker started PostgreSQL');
  t.true(entries().some((e) => /^starting 2 workers/.test(String(e['msg']))));
  const serving = entries().filter((e) => /^worker \d: serving HTTP/.test(String(e['msg'])));
  t.deepEqual(serving.map((e) => e['worker']).sort(), [1, 2]);
  const pidOf = (index: number) => Number(serving.find((e) => e['worker'] === index)!['pid']);

  const adminToken = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
  const admin = { Authorization: `Bearer ${adminToken}` };
  let made = 0; // HTTP requests this test made (each on a connection of its own)
  const call = async (request: Parameters<typeof send>[1]) => {
    made += 1;
    return await send(service.baseUrl, request);
  };
  const key = await call({
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    headers: admin,
    body: { fleet_id: 'c' },
  });
  t.is(key.status, 201, key.text);
  const provisioningKey = key.json.key as string;

  // registrations on fresh connections land on both workers: each carries a credential, the
  // ones answered by worker 2 issued by worker 1's broker over IPC
  const registered: { uuid: string; key: string; mqtt: { username: string; password: string; broker: string } }[] = [];
  for (let i = 0; i < 6; i += 1) {
    const device = { uuid: randomUUID(), key: `k-${randomBytes(12).toString('hex')}` };
    const r = await call({
      method: 'POST',
      path: '/api/v1/device/register',
      headers: { Authorization: `Bearer ${provisioningKey}` },
      body: { uuid: device.uuid, deviceName: `c-${i}`, deviceType: 'raspberry-pi-4', deviceApiKey: device.key },
    });
    t.is(r.status, 201, r.text);
    t.truthy(r.json.mqtt?.username, `registration ${i} has no MQTT credential: ${r.text}`);
    registered.push({ ...device, mqtt: r.json.mqtt });
  }
  for (const device of registered.slice(0, 2)) {
    // the broker admits each credential (whichever worker answered the registration)
    const client = await mqtt.connectAsync(device.mqtt.broker, {
      username: device.mqtt.username,
      password: device.mqtt.password,
      clientId: device.mqtt.username,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    await client.endAsync();
  }
  const device = registered[0]!;
  const report = await call({
    method: 'PATCH',
    path: '/api/v1/device/state',
    headers: { Authorization: `Bearer ${device.key}` },
    body: { [device.uuid]: { local_ip: '10.0.0.9', cpu_usage: 12 } },
  });
  t.is(report.status, 200, report.text);
  const target = await call({
    method: 'POST',
    path: `/api/v1/devices/${device.uuid}/target-state`,
    headers: admin,
    body: { apps: { '1000': { appName: 'a', services: [{ serviceName: 'main', image: 'r/a:1' }] } }, config: {} },
  });
  t.true(target.status >= 200 && target.status < 300, target.text);

  // load from a few dozen devices over keep-alive connections spread across the workers
  const workload = createWorkload({
    baseUrl: () => service.baseUrl,
    adminToken,
    provisioningKey,
    initialDevices: 24,
    maxDevices: 30,
    connections: 6,
  });
  await workload.provision();
  workload.start();
  await sleep(2000);
  await workload.stop();
  t.is(workload.stats.networkErrors, 0);
  const requestsBefore = made + workload.stats.sent;

  const metrics = await send(service.baseUrl, { method: 'GET', path: '/metrics', headers: admin });
  t.is(metrics.status, 200, metrics.text);
  const total = samples(metrics.text, 'devicetrail_http_requests_total').get('') ?? 0;
  t.is(total, requestsBefore, 'the summed request counter is not the number of requests made');
  const perPid = samples(metrics.text, 'devicetrail_worker_http_requests_total', 'pid');
  t.is([...perPid.values()].filter((n) => n > 0).length, 2, `not two workers answered: ${JSON.stringify([...perPid])}`);
  t.is([...perPid.values()].reduce((a, b) => a + b, 0), requestsBefore);
  t.deepEqual([...perPid.keys()].map(Number).sort(), [pidOf(1), pidOf(2)].sort());

  // the background jobs run in one process: worker 1 took every leader lock, nobody stands by
  // (a second process starting them would log "standing by" per job)
  const url = `postgres://postgres:${
    encodeURIComponent((await readFile(path.join(dataDir, 'pg-password'), 'utf8')).trim())
  }@127.0.0.1:${pgPort}/devicetrail`;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ holders: number; names: number }>(`
      SELECT count(*)::int AS holders, count(DISTINCT objid)::int AS names FROM pg_locks
       WHERE locktype = 'advisory' AND granted AND objsubid = 2
         AND classid::text::bigint = (hashtext('devicetrail.leader')::bigint + 4294967296) % 4294967296`);
    t.true(rows[0]!.holders >= 3, `leader locks held: ${rows[0]!.holders}`); // webhooks, device_summary, mqtt
    t.is(rows[0]!.holders, rows[0]!.names);
  } finally {
    await client.end();
  }
  const leaders = entries().filter((e) => /lock taken; processing$/.test(String(e['msg'])));
  t.true(leaders.length >= 2, 'the webhook and MQTT listeners took their locks'); // the projection logs none
  t.true(leaders.every((e) => e['worker'] === 1), 'a job runs outside worker 1');
  t.false(entries().some((e) => /standing by$/.test(String(e['msg']))));

  // a worker that dies is restarted
  process.kill(pidOf(2), 'SIGKILL');
  for (
    let i = 0;
    i < 200 && !entries().some((e) => /^worker 2 \(pid \d+\) is serving again/.test(String(e['msg'])));
    i++
  ) {
    await sleep(100);
  }
  t.true(entries().some((e) => /^worker 2 \(pid \d+\) died \(SIGKILL\); restarting it/.test(String(e['msg']))), dump());
  t.true(entries().some((e) => /^worker 2 \(pid \d+\) is serving again/.test(String(e['msg']))), dump());

  // SIGTERM under load: every worker drains, exit 0
  workload.resetConnections();
  workload.start();
  await sleep(1500);
  service.kill('SIGTERM');
  const exit = await service.exited;
  await workload.stop();
  t.is(exit.code, 0, dump());
  const stopped = entries().filter((e) => e['msg'] === 'stopped');
  t.deepEqual(stopped.map((e) => e['worker'] ?? 0).sort(), [0, 1, 2], dump());
  t.is(entries().at(-1)?.['msg'], 'stopped');
  t.is(entries().at(-1)?.['worker'], undefined, 'the primary is the last to stop');

  // the primary stopped PostgreSQL (started again here, it is ours), and nothing acknowledged is missing
  const database = await startEmbeddedPostgres({
    dataDir: path.join(dataDir, 'pg'),
    stateDir: dataDir,
    port: pgPort,
    database: 'devicetrail',
    log: () => undefined,
  });
  try {
    t.true(database.owned, 'the embedded PostgreSQL was left running');
    const found = await checkStore(database.url, workload.acks);
    t.true(found.acked > 0);
    t.true(storeIsSound(found), JSON.stringify({ ...found, problems: found.problems.slice(0, 5) }));
  } finally {
    await database.stop();
  }
});
