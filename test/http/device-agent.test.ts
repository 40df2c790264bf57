// The device agent of dsamborschi/zemfyre-sensor works unchanged (issue #15): every request
// below is built as the agent builds it (test/helpers/agent-protocol.ts, read from its source),
// one test per row of the issue's table, plus the drift blindness it found and what the edge
// promises around it: gzip bodies within the size limit, unknown fields ignored and counted,
// known ones still strict, admin bodies still strict.
import test from 'ava';
import { gzipSync } from 'node:zlib';
import { Buffer } from 'node:buffer';
import { sql } from 'slonik';
import { z } from 'zod';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import {
  type AgentIdentity,
  type AgentRequest,
  agentTarget,
  keyExchangeRequest,
  newAgentIdentity,
  pollRequest,
  registerRequest,
  reportRequest,
  stateReport,
  twoAppsFourContainers,
} from '../helpers/agent-protocol.ts';

let app: TestApp;
let provisioningKey: string;
let now = new Date('2026-12-01T09:00:00.000Z');
const tick = () => {
  now = new Date(now.getTime() + 1_000);
};

test.before(async () => {
  app = await startTestApp({ clock: () => now });
  provisioningKey = (await app.createProvisioningKey({ fleet_id: 'agents' })).key;
});
test.after.always(async () => {
  await app?.close();
});

/** Sends a request exactly as built (headers, raw or gzip body). */
async function send(req: AgentRequest) {
  tick();
  const response = await fetch(`${app.baseUrl}${req.path}`, {
    method: req.method,
    headers: req.headers,
    ...(req.body === undefined ? {} : { body: req.body }),
  });
  const text = await response.text();
  // deno-lint-ignore no-explicit-any -- response bodies are read as loose JSON
  let body: any = undefined;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, headers: response.headers, body, text };
}

const eventRow = z.object({ event_type: z.string(), data: z.unknown(), aggregate_version: z.number() });

/** The device's events, oldest first. */
async function eventsOf(uuid: string) {
  return app.db.pool.any(sql.type(eventRow)`
    SELECT event_type, data, aggregate_version::int AS aggregate_version FROM events
     WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} ORDER BY aggregate_version`);
}

/** A provisioned agent (register + key exchange), as the agent does it on first start. */
async function provisioned(options: Parameters<typeof registerRequest>[2] = {}): Promise<AgentIdentity> {
  const identity = newAgentIdentity();
  const registered = await send(registerRequest(identity, provisioningKey, options));
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`);
  const exchanged = await send(keyExchangeRequest(identity));
  if (exchanged.status !== 200) throw new Error(`key exchange: ${exchanged.status} ${exchanged.text}`);
  return identity;
}

test('row 1, registration: the newest agent (agentVersion, applicationId) gets 201 with a top-level id and mqtt, and both are recorded', async (t) => {
  const identity = newAgentIdentity();
  const response = await send(registerRequest(identity, provisioningKey, { applicationId: 7, agentVersion: '1.4.2' }));
  t.is(response.status, 201, response.text);
  // what the agent reads: response.id.toString(), response.mqtt.{username, password, broker}
  t.is(response.body.id, identity.uuid);
  t.is(String(response.body.id), identity.uuid);
  t.is(response.body.uuid, identity.uuid);
  t.is(response.body.deviceName, identity.deviceName);
  t.is(response.body.deviceType, 'standalone');
  t.is(response.body.applicationId, 7);
  t.is(response.body.createdAt, response.body.device.registered_at);
  t.deepEqual(response.body.mqtt, { username: null, password: null, broker: null });
  t.is(response.body.created, true, "devicetrail's own answer is still there");
  t.is(response.body.ignored_fields, undefined, 'every field the agent sends is known');
  t.is(response.body.device.application_id, 7);
  t.is(response.body.device.agent_version, '1.4.2');
  const [provisionedEvent] = await eventsOf(identity.uuid);
  t.is(provisionedEvent!.event_type, 'device.provisioned');
  t.like(provisionedEvent!.data as object, { application_id: 7, agent_version: '1.4.2', device_type: 'standalone' });
  // registering again (the agent retries provisioning after a crash): 200, the same shape, nothing written
  const again = await send(registerRequest(identity, provisioningKey, { applicationId: 7, agentVersion: '1.4.2' }));
  t.is(again.status, 200, again.text);
  t.is(again.body.id, identity.uuid);
  t.deepEqual(again.body.mqtt, { username: null, password: null, broker: null });
  t.is((await eventsOf(identity.uuid)).length, 1);
});

test('row 1, registration: an older agent (no agentVersion, no applicationId) gets the same top-level answer; both are null', async (t) => {
  const identity = newAgentIdentity();
  const response = await send(registerRequest(identity, provisioningKey, { agentVersion: null }));
  t.is(response.status, 201, response.text);
  t.is(response.body.id, identity.uuid);
  t.is(response.body.applicationId, null);
  t.deepEqual(response.body.mqtt, { username: null, password: null, broker: null });
  const [event] = await eventsOf(identity.uuid);
  t.like(event!.data as object, { application_id: null, agent_version: null });
});

test('row 1, registration: a field devicetrail does not know is ignored, listed and not stored; a known one of the wrong type is a 400', async (t) => {
  const identity = newAgentIdentity();
  const req = registerRequest(identity, provisioningKey);
  const body = { ...JSON.parse(req.body as string), fleetHint: 'north', hardware: { board: 'rpi5' } };
  const response = await send({ ...req, body: JSON.stringify(body) });
  t.is(response.status, 201, response.text);
  t.deepEqual(response.body.ignored_fields, ['body.fleetHint', 'body.hardware']);
  const stored = JSON.stringify(await eventsOf(identity.uuid));
  t.false(stored.includes('fleetHint') || stored.includes('rpi5'), 'nothing unknown is stored');
  const wrong = await send({
    ...req,
    body: JSON.stringify({ ...JSON.parse(req.body as string), uuid: crypto.randomUUID(), agentVersion: 3 }),
  });
  t.is(wrong.status, 400);
  t.regex(wrong.body.error.message, /^body\.agentVersion: Expected string, received number/);
});

test('row 2, key exchange: 200 {status, message, device}; idempotent, writes nothing; another key or device is refused', async (t) => {
  const identity = newAgentIdentity();
  t.is((await send(registerRequest(identity, provisioningKey))).status, 201);
  const before = await eventsOf(identity.uuid);
  const first = await send(keyExchangeRequest(identity));
  t.is(first.status, 200, first.text);
  t.deepEqual(first.body, {
    status: 'ok',
    message: 'the device key is valid',
    device: { id: identity.uuid, uuid: identity.uuid, deviceName: identity.deviceName },
  });
  const second = await send(keyExchangeRequest(identity));
  t.deepEqual(second.body, first.body, 'idempotent');
  t.deepEqual(await eventsOf(identity.uuid), before, 'no event');
  // the bearer must be the device's own key and the key in the body
  const other = newAgentIdentity();
  t.is((await send(registerRequest(other, provisioningKey))).status, 201);
  const mismatch = keyExchangeRequest(identity);
  mismatch.body = JSON.stringify({ uuid: identity.uuid, deviceApiKey: other.deviceApiKey });
  const refused = await send(mismatch);
  t.is(refused.status, 403);
  t.regex(refused.body.error.message, /deviceApiKey/);
  const foreign = keyExchangeRequest(other);
  foreign.path = `/api/v1/device/${identity.uuid}/key-exchange`;
  t.is((await send(foreign)).status, 403, "another device's uuid");
  const unknownKey = keyExchangeRequest({ ...identity, deviceApiKey: 'f'.repeat(64) });
  t.is((await send(unknownKey)).status, 401);
  t.deepEqual(await eventsOf(identity.uuid), before);
});

test('row 3, poll: GET /device/:uuid/state with X-Device-API-Key answers {"<uuid>": {apps, config, version}}, then 304 with the ETag; a heartbeat', async (t) => {
  const identity = await provisioned();
  const empty = await send(pollRequest(identity));
  t.is(empty.status, 200, empty.text);
  t.deepEqual(empty.body, { [identity.uuid]: { apps: {}, config: {}, version: 0 } });
  const target = agentTarget(twoAppsFourContainers());
  t.is(
    (await app.request('POST', `/api/v1/devices/${identity.uuid}/target-state`, {
      token: app.adminToken,
      body: target,
    })).status,
    200,
  );
  const first = await send(pollRequest(identity, empty.headers.get('etag')!));
  t.is(first.status, 200);
  t.is(first.headers.get('etag'), '"1"');
  t.deepEqual(first.body, { [identity.uuid]: { apps: target.apps, config: {}, version: 1 } });
  const seenBefore = (await app.deps.devices.get(identity.uuid))!.last_seen_at;
  const second = await send(pollRequest(identity, first.headers.get('etag')!));
  t.is(second.status, 304);
  t.is(second.text, '');
  t.not((await app.deps.devices.get(identity.uuid))!.last_seen_at, seenBefore, 'the poll is a heartbeat');
  // the same target through devicetrail's own endpoint, same ETag
  const own = await app.request('GET', `/api/v1/device/${identity.uuid}/target-state`, {
    token: identity.deviceApiKey,
  });
  t.is(own.headers.get('etag'), '"1"');
});

test('no device call works without a device credential: no header, an empty X-Device-API-Key (older agents), an unknown or foreign one', async (t) => {
  const identity = await provisioned();
  const other = await provisioned();
  const noKey = pollRequest(identity);
  delete noKey.headers['X-Device-API-Key'];
  t.is((await send(noKey)).status, 401);
  t.is((await send({ ...noKey, headers: { ...noKey.headers, 'X-Device-API-Key': '' } })).status, 401);
  t.is((await send(pollRequest({ ...identity, deviceApiKey: 'a'.repeat(64) }))).status, 401);
  t.is((await send({ ...pollRequest(identity), headers: { 'X-Device-API-Key': app.adminToken } })).status, 401);
  t.is((await send(pollRequest({ ...other, uuid: identity.uuid }))).status, 403, "another device's target");
  const report = reportRequest(identity, stateReport(identity, twoAppsFourContainers()));
  t.is((await send({ ...report, headers: { ...report.headers, 'X-Device-API-Key': '' } })).status, 401);
  // Authorization and X-Device-API-Key naming different keys: refused, not resolved either way
  const both = pollRequest(identity);
  both.headers['Authorization'] = `Bearer ${other.deviceApiKey}`;
  t.is((await send(both)).status, 401);
  // the header is a device credential only: admin routes do not read it
  t.is(
    (await send({ method: 'GET', path: '/api/v1/devices', headers: { 'X-Device-API-Key': identity.deviceApiKey } }))
      .status,
    401,
  );
});

test('row 4, report: gzip, X-Device-API-Key, services as a list with imageName; unknown fields listed, counted, never stored', async (t) => {
  const identity = await provisioned();
  const containers = twoAppsFourContainers();
  const response = await send(
    reportRequest(identity, stateReport(identity, containers, { first: true, metrics: true })),
  );
  t.is(response.status, 200, response.text);
  t.is(response.body.devices[identity.uuid].events_written >= 1, true);
  const root = `body.${identity.uuid}`;
  const ignored: string[] = response.body.ignored_fields;
  for (
    const field of [
      `${root}.is_online`,
      `${root}.version`,
      // of a service's config only the environment is kept (as markers; README "Secrets")
      `${root}.apps.1001.services.0.config.image`,
      `${root}.apps.1001.services.0.config.labels`,
      `${root}.apps.1001.services.0.state`,
      `${root}.apps.1002.services.1.config.ports`,
    ]
  ) t.true(ignored.includes(field), `${field} in ${ignored.join(', ')}`);
  t.false(ignored.some((f) => /imageName|serviceName|serviceId|appName|agent_version|local_ip/.test(f)), 'known');
  // the agent's process and network tables are telemetry (issue #15): known, kept in the metrics series only
  t.false(ignored.some((f) => /top_processes|network_interfaces/.test(f)), 'telemetry is known');
  const sample = await app.db.pool.one(sql.type(z.object({ tables: z.number() }))`
    SELECT count(*) FILTER (WHERE top_processes IS NOT NULL AND network_interfaces IS NOT NULL)::int AS tables
      FROM device_metrics WHERE device_uuid = ${identity.uuid}`);
  t.is(sample.tables, 1, 'one metrics sample with both tables');
  const report = (await eventsOf(identity.uuid)).find((e) => e.event_type === 'current_state.updated')!;
  const data = report.data as { apps: Record<string, { services: Record<string, Record<string, unknown>> }> };
  t.deepEqual(Object.keys(data.apps['1001']!.services).sort(), ['api', 'nginx'], 'keyed by serviceName');
  t.like(data.apps['1001']!.services['nginx']!, {
    serviceName: 'nginx',
    imageName: 'registry.example/web:3.1.0',
    status: 'running',
    serviceId: 1,
  });
  const stored = JSON.stringify(data);
  for (const unknown of ['is_online', 'top_processes', 'network_interfaces', 'hunter2', 's3cr3t', 'labels']) {
    t.false(stored.includes(unknown), `${unknown} is not stored`);
  }
  t.deepEqual(data.apps['1001']!.services['api']!['config'], {
    environment: { DATABASE_PASSWORD: app.deps.secrets.hash('hunter2-database-password') },
  }, 'the environment is stored as markers');
  t.like((data as unknown as { system: object }).system, { agent_version: '1.0.0', local_ip: '192.168.1.50' });
  const state = (await app.deps.devices.get(identity.uuid))!.state;
  t.is(state.status === 'registered' ? Object.keys(state.containers['1002'] ?? {}).length : 0, 2, 'containers seen');
  const metrics = await app.request('GET', '/metrics', { token: app.adminToken });
  t.regex(metrics.text, /devicetrail_ignored_fields_total\{route="\/api\/v1\/device\/state",field="is_online"\} \d+/);
  t.regex(metrics.text, /devicetrail_ignored_fields_total\{route="\/api\/v1\/device\/state",field="labels"\} \d+/);
});

test('row 4, report: services as an object keyed by name still work; a known field of the wrong type is a 400 naming it, nothing written', async (t) => {
  const identity = await provisioned();
  const keyed = await send(reportRequest(identity, {
    [identity.uuid]: { apps: { 1001: { services: { nginx: { status: 'running', imageName: 'web:1' } } } } },
  }));
  t.is(keyed.status, 200, keyed.text);
  const before = (await eventsOf(identity.uuid)).length;
  const cases: [object, RegExp][] = [
    [
      { apps: { 1001: { services: [{ serviceName: 'a', serviceId: 'one' }] } } },
      /services\.0\.serviceId: Expected number/,
    ],
    [{ apps: { 1001: { services: [{ status: 'running' }] } } }, /services\.0\.serviceName: Required/],
    [
      { apps: { 1001: { services: [{ serviceName: 'a' }, { serviceName: 'a' }] } } },
      /services\.1\.serviceName: "a" is also service 0/,
    ],
    [
      { apps: { 1001: { services: { a: { serviceName: 'b' } } } } },
      /services\.a\.serviceName: must be the service's key/,
    ],
    [{ apps: { 1001: { services: [{ serviceName: 'a', imageName: 7 }] } } }, /services\.0\.imageName: Expected string/],
    [{ cpu_usage: 'high', is_online: true }, /cpu_usage: Expected number/],
  ];
  for (const [entry, message] of cases) {
    const response = await send(reportRequest(identity, { [identity.uuid]: entry }));
    t.is(response.status, 400, response.text);
    t.regex(response.body.error.message, message);
  }
  t.is((await eventsOf(identity.uuid)).length, before);
});

test('drift blindness: a target moving one image 3.1.0 → 3.1.3 is drift until the agent runs 3.1.3; a stale report does not complete it', async (t) => {
  const identity = await provisioned();
  const v310 = twoAppsFourContainers('registry.example/web:3.1.0');
  const v313 = twoAppsFourContainers('registry.example/web:3.1.3');
  const setTarget = (containers: typeof v310) =>
    app.request('POST', `/api/v1/devices/${identity.uuid}/target-state`, {
      token: app.adminToken,
      body: agentTarget(containers),
    });
  t.is((await setTarget(v310)).status, 200);
  const converged = await send(reportRequest(identity, stateReport(identity, v310, { version: 1, first: true })));
  t.true(converged.body.devices[identity.uuid].in_sync, converged.text);
  const moved = await setTarget(v313);
  t.false(moved.body.in_sync, 'the new target is drift at once');
  const device = async () =>
    (await app.request('GET', `/api/v1/devices/${identity.uuid}`, { token: app.adminToken })).body;
  t.deepEqual((await device()).drift.services, [{
    app_id: '1001',
    service_name: 'nginx',
    problem: 'wrong_image',
    expected: 'registry.example/web:3.1.3',
    actual: 'registry.example/web:3.1.0',
  }]);
  // the agent has fetched version 2 but still runs 3.1.0 (a metrics report, the same apps)
  const stale = await send(reportRequest(identity, stateReport(identity, v310, { version: 2, metrics: true })));
  t.is(stale.status, 200);
  t.false(stale.body.devices[identity.uuid].in_sync, 'still drift');
  const types = async () => (await eventsOf(identity.uuid)).map((e) => e.event_type);
  t.is((await types()).filter((type) => type === 'reconciliation.completed').length, 1, 'only version 1 completed');
  // it runs 3.1.3 (a new container): in sync, reconciliation.completed for version 2
  const runs = v313.map((c) => (c.serviceName === 'nginx' ? { ...c, containerId: 'd'.repeat(64) } : c));
  const done = await send(reportRequest(identity, stateReport(identity, runs, { version: 2 })));
  t.true(done.body.devices[identity.uuid].in_sync, done.text);
  const completed = (await eventsOf(identity.uuid)).filter((e) => e.event_type === 'reconciliation.completed');
  t.is(completed.length, 2);
  t.like(completed[1]!.data as object, { target_version: 2 });
  t.true((await types()).includes('image.pulled'), 'the new image is seen');
  t.is((await device()).drift.in_sync, true);
});

test('targets: imageName must be text and agree with image when both are given (admin bodies stay strict)', async (t) => {
  const identity = await provisioned();
  const post = (body: object) =>
    app.request('POST', `/api/v1/devices/${identity.uuid}/target-state`, { token: app.adminToken, body });
  const service = (fields: object) => ({ apps: { 1: { services: [{ serviceName: 's', ...fields }] } } });
  const clash = await post(service({ image: 'a:1', imageName: 'a:2' }));
  t.is(clash.status, 400);
  t.regex(clash.body.error.message, /^body\.apps\.1\.services\.0\.imageName: must equal image/);
  t.is((await post(service({ imageName: '' }))).status, 400);
  t.is((await post(service({ image: 'a:1', imageName: 'a:1' }))).status, 200);
  const extra = await post({ ...service({ image: 'a:1' }), extra: true });
  t.is(extra.status, 400, 'an unknown field in an admin body is still refused');
  t.regex(extra.body.error.message, /unknown field\(s\): extra/);
});

test('gzip on every device endpoint; the size limit applies after decompression (a bomb is a 413); a broken stream is a 400', async (t) => {
  const identity = newAgentIdentity();
  const register = registerRequest(identity, provisioningKey);
  const gzipped = (req: AgentRequest): AgentRequest => ({
    ...req,
    headers: { ...req.headers, 'Content-Encoding': 'gzip' },
    body: gzipSync(req.body as string),
  });
  t.is((await send(gzipped(register))).status, 201);
  t.is((await send(gzipped(keyExchangeRequest(identity)))).status, 200);
  const events = await send({
    method: 'POST',
    path: '/api/v1/device/events',
    headers: {
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
      'X-Device-API-Key': identity.deviceApiKey,
    },
    body: gzipSync(JSON.stringify({ events: [{ type: 'volume.created', data: { app_id: 1001, name: 'data' } }] })),
  });
  t.is(events.status, 201, events.text);
  const before = (await eventsOf(identity.uuid)).length;
  // 64 MiB of spaces inside a valid JSON document compress to ~64 KiB
  const bomb = gzipSync(
    Buffer.concat([Buffer.from(`{"${identity.uuid}":{"cpu_usage":1}`), Buffer.alloc(64 << 20, 0x20), Buffer.from('}')]),
  );
  t.true(bomb.length < 256 * 1024, `${bomb.length} bytes on the wire, under the limit`);
  const boom = await send({ ...reportRequest(identity, {}), body: bomb });
  t.is(boom.status, 413, boom.text);
  t.is(boom.body.error.code, 'payload_too_large');
  const broken = await send({ ...reportRequest(identity, {}), body: Buffer.from('not gzip at all') });
  t.is(broken.status, 400, broken.text);
  t.is(broken.body.error.code, 'invalid_body');
  // a large broken body: answered, drained and its connection closed, so the next request on a
  // keep-alive client is answered too (it was an ECONNRESET: the fuzz found it)
  for (let i = 0; i < 3; i += 1) {
    const large = await send({ ...reportRequest(identity, {}), body: Buffer.alloc(200_000, 1) });
    t.is(large.status, 400, large.text);
    t.is(large.headers.get('connection'), 'close');
    t.is((await send(pollRequest(identity))).status, 200, 'the next request is answered');
  }
  const compress = reportRequest(identity, {});
  const unknownEncoding = await send({ ...compress, headers: { ...compress.headers, 'Content-Encoding': 'compress' } });
  t.is(unknownEncoding.status, 415, unknownEncoding.text);
  t.is((await eventsOf(identity.uuid)).length, before, 'nothing written');
});

test('issue #16 finding 2: a report keyed by case variants of its own uuid is a 400 and writes nothing', async (t) => {
  const identity = await provisioned();
  const before = (await eventsOf(identity.uuid)).length;
  const upper = identity.uuid.toUpperCase();
  const mixed = identity.uuid.replace(/[a-f]/, (c) => c.toUpperCase());
  const variants = { [identity.uuid]: { cpu_usage: 1 }, [upper]: { cpu_usage: 2 }, [mixed]: { cpu_usage: 3 } };
  const response = await send(reportRequest(identity, variants));
  t.is(response.status, 400, response.text);
  t.regex(response.body.error.message, /the same device as body\..+ \(uuids are case-insensitive\)/);
  t.is((await eventsOf(identity.uuid)).length, before);
  // one entry in any spelling is fine
  const one = await send(reportRequest(identity, { [upper]: { cpu_usage: 4 } }));
  t.is(one.status, 200, one.text);
  t.deepEqual(Object.keys(one.body.devices), [identity.uuid]);
});
