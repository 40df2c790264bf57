// The device agent's MQTT path (dsamborschi/zemfyre-sensor agent/ at 6f923aae: provisioning in
// src/provisioning/device-manager.ts, MqttManager in src/mqtt/mqtt-manager.ts, the report in
// src/sync-state.ts), with its requests as test/helpers/agent-protocol.ts builds them: it reads
// `mqtt.{username, password, broker}` from the registration reply, exchanges keys (ignoring the
// answer), connects as `device_<uuid>` with clean sessions, and publishes the same report body
// it would PATCH, to `iot/device/<uuid>/state` with QoS 1.
import test from 'ava';
import mqtt from 'mqtt';
import {
  type AgentRequest,
  keyExchangeRequest,
  newAgentIdentity,
  registerRequest,
  stateReport,
  twoAppsFourContainers,
} from '../helpers/agent-protocol.ts';
import { stateTopic } from '../../infra/mqtt/topics.ts';
import { eventually, startMqttApp } from './mqtt-app.ts';

let env: Awaited<ReturnType<typeof startMqttApp>>;
test.before(async () => {
  env = await startMqttApp();
});
test.after.always(async () => {
  await env?.close();
});

// deno-lint-ignore no-explicit-any -- the agent reads answers as loose JSON
async function send(request: AgentRequest): Promise<{ status: number; body: any }> {
  const response = await fetch(`${env.apiUrl}${request.path}`, {
    method: request.method,
    headers: request.headers,
    ...(request.body === undefined ? {} : { body: request.body }),
  });
  return { status: response.status, body: await response.json() };
}

/** MqttManager.connect as the agent calls it (options from agent.ts initializeMqttManager). */
const agentConnect = (broker: string, uuid: string, username: string, password: string) =>
  mqtt.connectAsync(broker, {
    clientId: `device_${uuid}`,
    clean: true,
    reconnectPeriod: 0, // the agent's is 5000; a test wants the refusal, not the retries
    connectTimeout: 10_000,
    username,
    password,
  }, false);

test('the agent gets its credential at registration, keeps it through the key exchange, and reports over MQTT', async (t) => {
  const identity = newAgentIdentity();
  const registered = await send(registerRequest(identity, env.provisioningKey, { applicationId: 42 }));
  t.is(registered.status, 201);
  const { username, password, broker } = registered.body.mqtt;
  t.is(username, `device_${identity.uuid}`);
  t.regex(password, /^[\w-]{43}$/);
  t.regex(broker, /^mqtt:\/\/127\.0\.0\.1:\d+$/);

  // phase 2: the agent ignores this answer; it holds no new password, so none is issued
  const exchanged = await send(keyExchangeRequest(identity));
  t.is(exchanged.status, 200);
  t.false('mqtt' in exchanged.body);

  const client = await agentConnect(broker, identity.uuid, username, password);
  const report = stateReport(identity, twoAppsFourContainers(), { first: true, metrics: true });
  await client.publishAsync(stateTopic(identity.uuid), JSON.stringify(report), { qos: 1 });
  const events = (await env.eventsOf(identity.uuid)).filter((e) => e.event_type === 'current_state.updated');
  t.is(events.length, 1, 'in the log when the PUBACK arrived');
  t.is(events[0]!.source, 'mqtt');
  t.is(Object.keys(events[0]!.data['apps'] as object).length, 2);
  // secrets never enter the log (README "Secrets"): over MQTT too, the environment is kept as markers
  const stored = JSON.stringify(events[0]!.data);
  t.false(stored.includes('hunter2-database-password') || stored.includes('s3cr3t-token-value'), 'no value stored');
  t.true(stored.includes(env.app.deps.secrets.hash('hunter2-database-password')), 'its marker instead');
  // the metrics went to the series, as over HTTP
  const metrics = await env.app.request('GET', `/api/v1/devices/${identity.uuid}/metrics`, {
    token: env.app.adminToken,
  });
  t.is(metrics.status, 200, metrics.text);
  t.not(metrics.body.latest, null);
  await client.endAsync();
});

test('the key exchange re-issues the password when asked; a repeated registration issues a new one', async (t) => {
  const identity = newAgentIdentity();
  const registered = await send(registerRequest(identity, env.provisioningKey));
  const first = registered.body.mqtt;
  const client = await agentConnect(first.broker, identity.uuid, first.username, first.password);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));

  const asked = keyExchangeRequest(identity);
  asked.body = JSON.stringify({ uuid: identity.uuid, deviceApiKey: identity.deviceApiKey, reissueMqtt: true });
  const exchanged = await send(asked);
  t.is(exchanged.status, 200);
  const second = exchanged.body.mqtt;
  t.is(second.username, first.username);
  t.not(second.password, first.password);
  await closed; // the session opened with the old password ends
  await t.throwsAsync(agentConnect(first.broker, identity.uuid, first.username, first.password), {
    message: /Bad username or password/,
  });
  (await agentConnect(second.broker, identity.uuid, second.username, second.password)).end();

  // the agent provisioning again after losing its database: 200, and a new password
  const again = await send(registerRequest(identity, env.provisioningKey));
  t.is(again.status, 200);
  t.not(again.body.mqtt.password, second.password);
  await eventually(async () =>
    !(await agentConnect(second.broker, identity.uuid, second.username, second.password).then((c) => {
      c.end();
      return true;
    }, () => false))
  );
  (await agentConnect(again.body.mqtt.broker, identity.uuid, again.body.mqtt.username, again.body.mqtt.password))
    .end();
});
