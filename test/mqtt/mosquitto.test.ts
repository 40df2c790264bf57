// Devices over MQTT with an external broker: a Mosquitto 2 of the test's own with the
// dynamic-security plugin (test/mqtt/mosquitto.ts), which devicetrail manages: each device's
// client and role, disabled and enabled with the device; reports read through the shared
// subscription and acknowledged to the broker only after commit, so a devicetrail that dies
// first gets the message again and appends it once.
import test from 'ava';
import mqtt, { type MqttClient } from 'mqtt';
import { sql } from 'slonik';
import { z } from 'zod';
import { stateTopic, targetTopic } from '../../infra/mqtt/topics.ts';
import { createDynsec } from '../../infra/mqtt/dynsec.ts';
import { mosquittoMissing, startMosquitto, type TestMosquitto } from './mosquitto.ts';
import { agentReport, eventually, nextMessage, startMqttApp } from './mqtt-app.ts';

const missing = mosquittoMissing();
if (missing !== null && process.env['DEVICETRAIL_REQUIRE_MOSQUITTO'] === '1') {
  throw new Error(`DEVICETRAIL_REQUIRE_MOSQUITTO=1 but ${missing}`);
}
const maybe = missing === null ? test.serial : test.serial.skip;
if (missing !== null) console.warn(`\n  SKIPPING the Mosquitto suite: ${missing}\n`);

let mosquitto: TestMosquitto;
let env: Awaited<ReturnType<typeof startMqttApp>>;
test.before(async () => {
  if (missing !== null) return;
  mosquitto = await startMosquitto();
  env = await startMqttApp({ mosquitto });
});
test.after.always(async () => {
  await env?.close();
  await mosquitto?.stop();
});

const closed = (client: MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()));
async function subscribe(client: MqttClient, filter: string): Promise<number> {
  try {
    return (await client.subscribeAsync(filter, { qos: 1 }))[0]!.qos;
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted !== undefined) return granted[0]!;
    throw error;
  }
}
const reportsOf = async (uuid: string) =>
  (await env.eventsOf(uuid)).filter((e) => e.event_type === 'current_state.updated');

maybe('registration creates the device at the broker; the topic rules hold there too', async (t) => {
  const a = await env.newDevice();
  const b = await env.newDevice();
  t.is(a.broker, mosquitto.url);
  await t.throwsAsync(env.connectDevice(a, { password: 'wrong' }), { message: /Not authorized|Bad username/ });
  await t.throwsAsync(env.connectDevice(a, { clientId: 'other-id' }), { message: /Not authorized|Identifier/ });

  const client = await env.connectDevice(a, { protocolVersion: 5 });
  t.is(await subscribe(client, `iot/device/${a.uuid}/#`), 1);
  t.true((await subscribe(client, `iot/device/${b.uuid}/#`)) >= 128);
  t.true((await subscribe(client, 'iot/device/+/state')) >= 128);
  t.true((await subscribe(client, '#')) >= 128);
  // MQTT 5: the broker answers a publish it refuses with a reason code (135: not authorized)
  await t.throwsAsync(client.publishAsync(stateTopic(b.uuid), agentReport(b.uuid), { qos: 1 }), {
    message: /Not authorized/,
  });
  // (MQTT.js 5 sends nothing more on a connection after a refused publish: a new one)
  await client.endAsync(true);
  const again = await env.connectDevice(a);
  await again.publishAsync(stateTopic(a.uuid), agentReport(a.uuid), { qos: 1 });
  await eventually(async () => (await reportsOf(a.uuid)).length === 1);
  t.is((await reportsOf(b.uuid)).length, 0, "nothing reached b's stream");
  t.is((await reportsOf(a.uuid))[0]!.source, 'mqtt');

  // a new credential replaces the old one at the broker
  const reissued = await env.transport.issueCredentials(a.uuid);
  await t.throwsAsync(env.connectDevice(a), { message: /Not authorized|Bad username/ });
  t.true((await env.connectDevice({ ...a, ...reissued! })).connected);
});

maybe('a disabled device is disconnected and refused by the broker until it is enabled again', async (t) => {
  const device = await env.newDevice();
  const client = await env.connectDevice(device);
  const gone = closed(client);
  const off = await env.app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: env.app.adminToken,
    body: { is_active: false },
  });
  t.is(off.status, 200, off.text);
  await gone;
  await t.throwsAsync(env.connectDevice(device), { message: /Not authorized/ });
  await env.app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: env.app.adminToken,
    body: { is_active: true },
  });
  let back: MqttClient | null = null;
  await eventually(async () => {
    back = await env.connectDevice(device).catch(() => null);
    return back !== null;
  });
  t.true(back!.connected);
});

maybe(
  'devicetrail acknowledges to the broker only after commit: a report in flight when it dies is appended once',
  async (t) => {
    const device = await env.newDevice();
    const client = await env.connectDevice(device);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    const holder = env.app.db.pool.transaction(async (tx) => {
      await tx.query(sql.unsafe`SELECT version FROM streams
      WHERE aggregate_type = 'device' AND aggregate_id = ${device.uuid} FOR UPDATE`);
      locked();
      await held;
    });
    await lockTaken;
    // the broker takes it (its PUBACK to the device); devicetrail's commit waits on the lock
    await client.publishAsync(stateTopic(device.uuid), agentReport(device.uuid, { os_version: 'one' }), { qos: 1 });
    // devicetrail holds it: its append waits for the row lock
    await eventually(
      async () =>
        (await env.app.db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
          SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE wait_event_type = 'Lock' AND datname = current_database()`)) > 0,
      15_000,
    );
    // devicetrail goes away before acknowledging; the commit then goes through
    await env.transport.stop();
    release();
    await holder;
    await eventually(async () => (await reportsOf(device.uuid)).length === 1, 15_000);
    // while it is away the device reports again: the broker keeps it for devicetrail's session
    await client.publishAsync(stateTopic(device.uuid), agentReport(device.uuid, { os_version: 'two' }), { qos: 1 });
    await env.restart();
    await eventually(async () => (await reportsOf(device.uuid)).length === 2, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    const reports = await reportsOf(device.uuid);
    t.deepEqual(reports.map((e) => (e.data['system'] as Record<string, unknown>)['os_version']), ['one', 'two']);
    t.regex(await env.registry.metrics(), /devicetrail_mqtt_reports_total\{result="duplicate",code=""\} 1/);
  },
);

maybe('a target change is published, retained, to the device through the broker', async (t) => {
  const device = await env.newDevice();
  const client = await env.connectDevice(device);
  await client.subscribeAsync(targetTopic(device.uuid), { qos: 1 });
  const notice = nextMessage(client, targetTopic(device.uuid));
  const set = await env.app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: env.app.adminToken,
    body: { apps: { '1001': { imageName: 'registry.example/sensors:2.0.0' } } },
  });
  t.is(set.status, 200, set.text);
  t.like(JSON.parse((await notice).payload), { version: 1, etag: '"1"' });
  const late = await env.connectDevice(device, { clientId: device.username });
  const retained = nextMessage(late, targetTopic(device.uuid));
  await late.subscribeAsync(targetTopic(device.uuid), { qos: 1 });
  t.true((await retained).retain);
});

maybe(
  "dynamic security: a device's client and role are created, updated, disabled and deleted idempotently",
  async (t) => {
    const admin = await mqtt.connectAsync(mosquitto.url, {
      username: mosquitto.admin.username,
      password: mosquitto.admin.password,
      clientId: `dynsec-test-${crypto.randomUUID().slice(0, 8)}`,
    });
    const dynsec = await createDynsec(admin);
    try {
      const uuid = crypto.randomUUID();
      const device = { uuid, key: '', username: `device_${uuid}`, password: 'first-password', broker: mosquitto.url };
      await dynsec.upsertDevice(uuid, device.password, true);
      await dynsec.upsertDevice(uuid, 'second-password', true); // an update: the password is replaced
      await t.throwsAsync(env.connectDevice(device), { message: /Not authorized|Bad username/ });
      (await env.connectDevice({ ...device, password: 'second-password' })).end();
      await dynsec.setEnabled(uuid, false);
      await t.throwsAsync(env.connectDevice({ ...device, password: 'second-password' }), { message: /Not authorized/ });
      await dynsec.deleteDevice(uuid);
      await dynsec.deleteDevice(uuid); // gone already: fine
      const [client, role] = await dynsec.execute([
        { command: 'getClient', username: device.username },
        { command: 'getRole', rolename: device.username },
      ]);
      t.regex(client!.error ?? '', /not found/i);
      t.regex(role!.error ?? '', /not found/i);
    } finally {
      dynsec.close();
      await admin.endAsync();
    }
  },
);
