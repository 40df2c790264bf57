// Devices over MQTT with the embedded broker (aedes), driven by MQTT.js as the device agent
// drives it: credentials, the topic rules, reports acknowledged after commit, refusals,
// target notices, contact, metrics.
import test from 'ava';
import type { MqttClient } from 'mqtt';
import { sql } from 'slonik';
import { z } from 'zod';
import { rejectedTopic, stateTopic, targetTopic } from '../../infra/mqtt/topics.ts';
import { agentReport, eventually, nextMessage, startMqttApp } from './mqtt-app.ts';

let env: Awaited<ReturnType<typeof startMqttApp>>;
test.before(async () => {
  env = await startMqttApp();
});
test.after.always(async () => {
  await env?.close();
});

const closed = (client: MqttClient) => new Promise<void>((resolve) => client.once('close', () => resolve()));

/** The granted QoS of one subscription (128: refused). */
async function subscribe(client: MqttClient, filter: string): Promise<number> {
  try {
    const granted = await client.subscribeAsync(filter, { qos: 1 });
    return granted[0]!.qos;
  } catch (error) {
    const granted = (error as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted !== undefined) return granted[0]!;
    throw error;
  }
}

test('a QoS 1 report is acknowledged only after its event is committed; it takes the HTTP report path', async (t) => {
  const device = await env.newDevice();
  const client = await env.connectDevice(device);
  // hold the device's stream row: the append waits for it, so the commit cannot happen yet
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
  let acked = false;
  const ack = client.publishAsync(stateTopic(device.uuid), agentReport(device.uuid), { qos: 1 }).then(() => {
    acked = true;
  });
  await new Promise((r) => setTimeout(r, 800));
  t.false(acked, 'no PUBACK while the commit is held back');
  t.false((await env.eventsOf(device.uuid)).some((e) => e.event_type === 'current_state.updated'));
  release();
  await holder;
  await ack;
  const events = await env.eventsOf(device.uuid);
  const report = events.find((e) => e.event_type === 'current_state.updated');
  t.truthy(report, 'the event is in the log when the PUBACK arrives');
  t.is(report!.source, 'mqtt');
  t.is(report!.metadata['endpoint'], 'mqtt:iot/device/:uuid/state');
  t.regex(String(report!.metadata['request_id']), /^mqtt:[0-9a-f]{24}:\d+$/);
  t.deepEqual(report!.metadata['actor'], { type: 'device', id: device.uuid });

  // the same body over HTTP (another device) folds into the same event data
  const twin = await env.newDevice();
  const http = await env.app.request('PATCH', '/api/v1/device/state', {
    headers: { 'X-Device-API-Key': twin.key, 'Content-Type': 'application/json' },
    raw: agentReport(twin.uuid),
  });
  t.is(http.status, 200, http.text);
  const overHttp = (await env.eventsOf(twin.uuid)).find((e) => e.event_type === 'current_state.updated');
  t.deepEqual(report!.data, overHttp!.data);
  t.is(overHttp!.source, 'api');
});

test('the topic rules: own topics only, the right client id and password, server topics read-only', async (t) => {
  const a = await env.newDevice();
  const b = await env.newDevice();
  await t.throwsAsync(env.connectDevice(a, { password: 'wrong' }), { message: /Bad username or password/ });
  await t.throwsAsync(env.connectDevice(a, { clientId: `device_${b.uuid}` }), { message: /Not authorized/ });
  await t.throwsAsync(env.connectDevice(a, { clientId: 'something-else' }), { message: /Not authorized/ });
  await t.throwsAsync(env.connectDevice({ ...a, username: `device_${crypto.randomUUID()}` }), {
    message: /Bad username or password/,
  });
  await t.throwsAsync(env.connectDevice(a, { username: 'admin' }), { message: /Bad username or password/ });

  const client = await env.connectDevice(a);
  t.is(await subscribe(client, `iot/device/${a.uuid}/#`), 1);
  t.is(await subscribe(client, targetTopic(a.uuid)), 1);
  t.is(await subscribe(client, `iot/device/${b.uuid}/#`), 128);
  t.is(await subscribe(client, targetTopic(b.uuid)), 128);
  t.is(await subscribe(client, 'iot/device/+/state'), 128);
  t.is(await subscribe(client, '#'), 128);
  t.is(await subscribe(client, `$share/g/iot/device/${a.uuid}/state`), 128);

  // a publish under another device's uuid closes the connection; nothing reaches b's stream
  const before = (await env.eventsOf(b.uuid)).length;
  const gone = closed(client);
  client.publish(stateTopic(b.uuid), agentReport(b.uuid), { qos: 1 });
  await gone;
  t.is((await env.eventsOf(b.uuid)).length, before);

  // the server's own topics are read-only for the device
  const again = await env.connectDevice(a);
  const gone2 = closed(again);
  again.publish(targetTopic(a.uuid), '{"version": 999}', { qos: 1, retain: true });
  await gone2;
  const metrics = await env.registry.metrics();
  t.regex(metrics, /devicetrail_mqtt_refused_total\{kind="publish",reason="topic not allowed"\} 2/);
  t.regex(metrics, /devicetrail_mqtt_refused_total\{kind="subscribe",reason="topic filter not allowed"\} 5/);
  t.regex(metrics, /devicetrail_mqtt_refused_total\{kind="connect",reason="bad username or password"\} 2/);
  t.regex(metrics, /devicetrail_mqtt_refused_total\{kind="connect",reason="unknown username"\} 1/);
  t.regex(metrics, /devicetrail_mqtt_refused_total\{kind="connect",reason="client id must be the username"\} 2/);
});

test('a disabled device is disconnected and refused until it is enabled again', async (t) => {
  const device = await env.newDevice();
  const client = await env.connectDevice(device);
  const gone = closed(client);
  const off = await env.app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: env.app.adminToken,
    body: { is_active: false, reason: 'stolen' },
  });
  t.is(off.status, 200, off.text);
  await gone;
  await t.throwsAsync(env.connectDevice(device), { message: /Not authorized/ });
  const on = await env.app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: env.app.adminToken,
    body: { is_active: true },
  });
  t.is(on.status, 200, on.text);
  const back = await env.connectDevice(device);
  t.true(back.connected);
});

test('a refused report is acknowledged, writes nothing, and its reason goes to …/state/rejected', async (t) => {
  const a = await env.newDevice();
  const b = await env.newDevice();
  const client = await env.connectDevice(a);
  await client.subscribeAsync(rejectedTopic(a.uuid), { qos: 1 });
  const before = (await env.eventsOf(a.uuid)).length;

  const notJson = nextMessage(client, rejectedTopic(a.uuid));
  await client.publishAsync(stateTopic(a.uuid), '{not json', { qos: 1 });
  t.like(JSON.parse((await notJson).payload), { code: 'invalid_json' });

  const foreign = nextMessage(client, rejectedTopic(a.uuid));
  await client.publishAsync(stateTopic(a.uuid), agentReport(b.uuid), { qos: 1 });
  const reason = JSON.parse((await foreign).payload);
  t.is(reason.code, 'forbidden');
  t.regex(reason.message, /may only report its own state/);
  t.regex(reason.request_id, /^mqtt:/);

  const wrongType = nextMessage(client, rejectedTopic(a.uuid));
  await client.publishAsync(stateTopic(a.uuid), agentReport(a.uuid, { uptime: 'long' }), { qos: 1 });
  t.like(JSON.parse((await wrongType).payload), { code: 'invalid_request' });

  t.is((await env.eventsOf(a.uuid)).length, before, 'nothing written');
  t.regex(await env.registry.metrics(), /devicetrail_mqtt_reports_total\{result="rejected",code="invalid_json"\} 1/);
});

test('a target change reaches a subscribed device at once, with its version and ETag; later subscribers get it retained', async (t) => {
  const device = await env.newDevice();
  const client = await env.connectDevice(device);
  await client.subscribeAsync(targetTopic(device.uuid), { qos: 1 });
  const notice = nextMessage(client, targetTopic(device.uuid));
  const set = await env.app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: env.app.adminToken,
    body: { apps: { '1001': { imageName: 'registry.example/sensors:1.1.0' } } },
  });
  t.is(set.status, 200, set.text);
  const body = JSON.parse((await notice).payload);
  t.like(body, { uuid: device.uuid, version: 1, etag: '"1"', poll: `/api/v1/device/${device.uuid}/state` });
  // the ETag is the one the poll answers with
  const poll = await env.app.request('GET', `/api/v1/device/${device.uuid}/state`, {
    headers: { 'X-Device-API-Key': device.key },
  });
  t.is(poll.headers.get('etag'), body.etag);

  const late = await env.connectDevice(device);
  const retained = nextMessage(late, targetTopic(device.uuid));
  await late.subscribeAsync(targetTopic(device.uuid), { qos: 1 });
  const got = await retained;
  t.true(got.retain);
  t.like(JSON.parse(got.payload), { version: 1 });
  await eventually(async () =>
    /devicetrail_mqtt_target_seconds_count\{stage="sent"\} [1-9]/.test(await env.registry.metrics())
  );
  t.pass();
});

test('connecting counts as contact: last_seen_at moves and the connected gauge counts the device', async (t) => {
  const device = await env.newDevice();
  const seen = () =>
    env.app.db.pool.oneFirst(sql.type(z.object({ at: z.string().nullable() }))`
      SELECT last_seen_at AS at FROM devices WHERE uuid = ${device.uuid}`);
  const before = await seen();
  await new Promise((r) => setTimeout(r, 20));
  const client = await env.connectDevice(device);
  await eventually(async () => (await seen()) !== before);
  t.true(env.transport.isConnected(device.uuid) === true);
  t.regex(await env.registry.metrics(), /devicetrail_mqtt_connected_clients [1-9]/);
  await client.endAsync();
  await eventually(() => env.transport.isConnected(device.uuid) === false);
});
