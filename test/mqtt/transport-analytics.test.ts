// Delivery and convergence per transport (issue #18): a target's notice written to a device's
// MQTT connection and the first 200 of a target poll are its deliveries (one row each, the
// first time only); the report that brings the device in sync says over which transport it
// converged. The lifecycle analytics split both by transport, and the console's device page
// shows the connection, the last report's transport and the target's deliveries.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { stateTopic, targetTopic } from '../../infra/mqtt/topics.ts';
import { agentReport, eventually, nextMessage, startMqttApp } from './mqtt-app.ts';

let env: Awaited<ReturnType<typeof startMqttApp>>;
test.before(async () => {
  env = await startMqttApp();
});
test.after.always(async () => {
  await env?.close();
});

/** The target the agent report of mqtt-app.ts is in sync with. */
const target = {
  apps: { '1001': { services: [{ serviceName: 'main', imageName: 'registry.example/sensors:1.0.0' }] } },
};

const deliveryRow = z.object({ transport: z.string(), target_version: z.number() });
const deliveriesOf = (uuid: string) =>
  env.app.db.pool.any(sql.type(deliveryRow)`
    SELECT transport, target_version FROM target_deliveries WHERE aggregate_id = ${uuid} ORDER BY transport`);

test.serial('deliveries and convergence are recorded and split by transport', async (t) => {
  // device A: MQTT — the notice is its delivery, its report over MQTT converges the target
  const a = await env.newDevice();
  const client = await env.connectDevice(a);
  await client.subscribeAsync(targetTopic(a.uuid), { qos: 1 });
  const notice = nextMessage(client, targetTopic(a.uuid));
  const setA = await env.app.request('POST', `/api/v1/devices/${a.uuid}/target-state`, {
    token: env.app.adminToken,
    body: target,
  });
  t.is(setA.status, 200, setA.text);
  t.like(JSON.parse((await notice).payload), { version: 1 });
  await eventually(async () => (await deliveriesOf(a.uuid)).length === 1);
  t.deepEqual(await deliveriesOf(a.uuid), [{ transport: 'mqtt', target_version: 1 }]);
  await client.publishAsync(stateTopic(a.uuid), agentReport(a.uuid), { qos: 1 });
  const completed = (await env.eventsOf(a.uuid)).find((e) => e.event_type === 'reconciliation.completed');
  t.is(completed?.source, 'mqtt');
  // the agent's fields devicetrail does not know are counted by name, as over HTTP
  t.regex(await env.registry.metrics(), /devicetrail_mqtt_ignored_fields_total\{field="is_online"\} 1/);

  // device B: HTTP — its first 200 is the delivery (once: a 304 and another 200 add nothing)
  const b = await env.newDevice();
  const setB = await env.app.request('POST', `/api/v1/devices/${b.uuid}/target-state`, {
    token: env.app.adminToken,
    body: target,
  });
  t.is(setB.status, 200, setB.text);
  t.deepEqual(await deliveriesOf(b.uuid), [], 'set is not delivered');
  const poll = (etag?: string) =>
    env.app.request('GET', `/api/v1/device/${b.uuid}/state`, {
      headers: { 'X-Device-API-Key': b.key, ...(etag === undefined ? {} : { 'If-None-Match': etag }) },
    });
  const first = await poll();
  t.is(first.status, 200);
  t.is((await poll(first.headers.get('etag')!)).status, 304);
  t.is((await poll()).status, 200);
  t.deepEqual(await deliveriesOf(b.uuid), [{ transport: 'http', target_version: 1 }]);
  const report = await env.app.request('PATCH', '/api/v1/device/state', {
    token: b.key,
    body: JSON.parse(agentReport(b.uuid)),
  });
  t.is(report.status, 200, report.text);
  t.true(report.body.devices[b.uuid].in_sync);

  const stats = await env.app.request('GET', '/api/v1/analytics/reconciliation?window=1h', {
    token: env.app.adminToken,
  });
  t.is(stats.status, 200, stats.text);
  const byTransport = stats.body.by_transport;
  t.like(byTransport.mqtt, { delivered: 1, converged: 1 });
  t.like(byTransport.http, { delivered: 1, converged: 1 });
  t.true(byTransport.mqtt.delivery_ms.p50 >= 0 && byTransport.mqtt.convergence_ms.p50 >= 0);
  const slowA = stats.body.slowest.find((s: { uuid: string }) => s.uuid === a.uuid);
  t.like(slowA, { converged_over: 'mqtt', status: 'converged' });
  t.truthy(slowA.delivered.mqtt);
  t.is(slowA.delivered.http, undefined);

  // the device page: A connected over MQTT, last report over MQTT, version 1 delivered over MQTT
  const page = await fetch(`${env.apiUrl}/devices/${a.uuid}`, {
    headers: { Authorization: `Bearer ${env.app.adminToken}` },
  });
  t.is(page.status, 200);
  const html = await page.text();
  const section = html.slice(
    html.indexOf('id="device-connection"'),
    html.indexOf('</section>', html.indexOf('id="device-connection"')),
  );
  t.regex(section, /Connected<\/span> to the embedded broker/);
  t.regex(section, /Last report<\/dt><dd>over MQTT/);
  t.regex(section, /version 1 over MQTT/);
  await client.endAsync();
  await eventually(() => env.transport.isConnected(a.uuid) === false);
  const after = await (await fetch(`${env.apiUrl}/devices/${b.uuid}`, {
    headers: { Authorization: `Bearer ${env.app.adminToken}` },
  })).text();
  t.regex(after, /Last report<\/dt><dd>over HTTP/);
  t.regex(after, /version 1 over HTTP/);
});
