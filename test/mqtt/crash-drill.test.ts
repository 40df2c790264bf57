// The SIGKILL drill: the real service (app/main.ts, embedded broker) is killed three times
// while devices stream QoS 1 reports (several in flight each) and restarted on the same ports;
// the devices' MQTT.js clients reconnect and send again what was not acknowledged. Afterwards
// every acknowledged report is in the log, none twice, each device's reports in the order it
// sent them, and every stream's versions run 1..n.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { sql } from 'slonik';
import { z } from 'zod';
import { issueCredential } from '../../infra/mqtt/credentials-store.ts';
import { createCredentialHasher } from '../../infra/devices/credentials.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { stateTopic } from '../../infra/mqtt/topics.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type ServiceProcess, startService, stopService } from '../reliability/service-process.ts';
import { agentReport } from './mqtt-app.ts';

const DEVICES = 6;
const IN_FLIGHT = 4;
const KILLS = 3;

let db: TestDatabase;
let dataDir: string;
let service: ServiceProcess | null = null;
const clients: MqttClient[] = [];
// a worker that ends without its after hooks (a timeout) must not leave the service running
process.once('exit', () => service?.kill('SIGKILL'));
test.before(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-mqtt-drill-'));
});
test.after.always(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  if (service !== null) await stopService(service, 5000);
  await db?.drop();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('SIGKILL during a stream of QoS 1 reports: nothing acknowledged is lost, nothing is appended twice', async (t) => {
  t.timeout(180_000);
  const port = await freePort();
  const mqttPort = await freePort();
  const env = {
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    MQTT_PORT: String(mqttPort),
    MQTT_HOST: '127.0.0.1',
    REPORT_RATE_LIMIT: 'off',
    REALTIME_JOBS: 'false',
  };
  const start = () => startService({ port, env, readyTimeoutMs: 60_000 });
  service = await start();
  const adminToken = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
  // the service's own pepper, which its broker checks MQTT passwords with
  const hasher = createCredentialHasher((await readFile(path.join(dataDir, 'credential-pepper'), 'utf8')).trim());
  const api = async (method: string, url: string, token: string, body: unknown) => {
    const response = await fetch(`${service!.baseUrl}${url}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const key = await api('POST', '/api/v1/provisioning-keys', adminToken, { fleet_id: 'drill' });
  t.is(key.status, 201);

  type Device = { uuid: string; client: MqttClient; sent: number; acked: Set<number> };
  const devices: Device[] = [];
  for (let d = 0; d < DEVICES; d += 1) {
    const uuid = crypto.randomUUID();
    const registered = await api('POST', '/api/v1/device/register', (key.body as { key: string }).key, {
      uuid,
      deviceName: `drill-${d}`,
      deviceType: 'pi',
      deviceApiKey: `drill-key-${uuid}`,
    });
    t.is(registered.status, 201);
    const credential = (await issueCredential(db.pool, hasher, uuid))!;
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, {
      clientId: credential.username,
      username: credential.username,
      password: credential.password,
      reconnectPeriod: 200,
      connectTimeout: 5000,
    });
    client.on('error', () => undefined); // refused while the service restarts: it tries again
    clients.push(client);
    devices.push({ uuid, client, sent: 0, acked: new Set() });
  }

  // each device keeps IN_FLIGHT reports unacknowledged, each report a new state
  let streaming = true;
  const pumps = devices.map(async (device) => {
    const inFlight = new Set<Promise<void>>();
    while (streaming) {
      const n = (device.sent += 1);
      const sent = device.client.publishAsync(
        stateTopic(device.uuid),
        agentReport(device.uuid, { os_version: `step-${n}` }),
        { qos: 1 },
      ).then(() => {
        device.acked.add(n);
      }, () => undefined);
      inFlight.add(sent);
      void sent.then(() => inFlight.delete(sent));
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
      await sleep(5);
    }
    await Promise.all(inFlight);
  });

  for (let k = 0; k < KILLS; k += 1) {
    await sleep(1500 + Math.random() * 2500);
    service.kill('SIGKILL');
    await service.exited;
    service = await start();
  }
  await sleep(1500);
  streaming = false;
  // what MQTT.js still holds is sent again after the last restart; wait for every answer
  const settled = await Promise.race([Promise.all(pumps).then(() => true), sleep(90_000).then(() => false)]);
  t.true(settled, 'every report was acknowledged in the end');

  const rows = await db.pool.any(sql.type(z.object({ uuid: z.string(), step: z.string().nullable() }))`
    SELECT aggregate_id AS uuid, data #>> '{system,os_version}' AS step FROM events
     WHERE event_type = 'current_state.updated' ORDER BY aggregate_id, aggregate_version`);
  let acked = 0;
  for (const device of devices) {
    const steps = rows.filter((r) => r.uuid === device.uuid).map((r) => Number(r.step!.slice('step-'.length)));
    acked += device.acked.size;
    const missing = [...device.acked].filter((n) => !steps.includes(n));
    t.deepEqual(missing, [], `acknowledged reports of ${device.uuid} missing from the log`);
    t.is(new Set(steps).size, steps.length, `a report of ${device.uuid} appended twice`);
    t.deepEqual(steps, [...steps].sort((a, b) => a - b), `reports of ${device.uuid} out of order`);
  }
  const gaps = await db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM streams s
     WHERE s.version <> (SELECT count(*) FROM events e
                          WHERE e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id)`);
  t.is(gaps, 0, 'every stream runs 1..n');
  // the last process's count of redeliveries it recognised (those after the last kill)
  const metrics =
    await (await fetch(`${service!.baseUrl}/metrics`, { headers: { Authorization: `Bearer ${adminToken}` } }))
      .text();
  const duplicates = /devicetrail_mqtt_reports_total\{result="duplicate",code=""\} (\d+)/.exec(metrics)?.[1] ?? '0';
  t.log(
    `${devices.length} devices, ${acked} reports acknowledged, ${rows.length} report events, ${KILLS} kills, ${duplicates} redelivered reports recognised after the last`,
  );
});
