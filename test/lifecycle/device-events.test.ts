// POST /api/v1/device/events: a device sends lifecycle events it observed itself; they are
// validated against the catalogue and stored with source 'device', or refused whole.
import test from 'ava';
import { deviceEvents, expectStatus, startLifecycleApp } from './test-driver.ts';

const T0 = new Date('2026-06-01T09:00:00.000Z');

async function setup() {
  const env = await startLifecycleApp(T0);
  const { app } = env;
  const { key } = await env.app.createProvisioningKey();
  const device = await app.registerDevice(key);
  expectStatus(device.response, 201, 'register');
  const send = (body: unknown, token = device.key) => app.request('POST', '/api/v1/device/events', { token, body });
  return { ...env, device, send };
}

const crashed = {
  type: 'container.crashed',
  data: { app_id: 1000, service_name: 'main', container_id: 'c1', status: 'exited', exit_code: 139, restart_count: 3 },
  observed_at: '2026-06-01T10:59:58+01:00',
};
const volume = { type: 'volume.created', data: { app_id: '1000', name: 'data' } };

test('a valid batch is stored in order with source device, the device as actor and observed_at; the state folds it', async (t) => {
  const { app, device, send } = await setup();
  t.teardown(() => app.close());
  const response = await send({
    events: [crashed, volume, {
      type: 'image.pull_failed',
      data: { app_id: '1000', service_name: 'main', error: 'no space left on device' },
    }],
  });
  t.is(response.status, 201, response.text);
  t.is(response.body.events_written, 3);
  t.is(response.body.event_ids.length, 3);
  const events = (await deviceEvents(app, device.uuid)).slice(1);
  t.deepEqual(events.map((e) => e.event_id), response.body.event_ids);
  t.deepEqual(events.map((e) => e.event_type), ['container.crashed', 'volume.created', 'image.pull_failed']);
  t.true(events.every((e) => e.source === 'device' && e.timestamp === T0.toISOString()));
  t.deepEqual(events[0]!.data, {
    app_id: '1000',
    service_name: 'main',
    container_id: 'c1',
    image: null,
    status: 'exited',
    exit_code: 139,
    restart_count: 3,
    observed_at: '2026-06-01T09:59:58.000Z',
  });
  t.deepEqual(events[1]!.data, { app_id: '1000', name: 'data' });
  t.deepEqual(events[2]!.data, { app_id: '1000', service_name: 'main', image: null, error: 'no space left on device' });
  t.deepEqual(events[0]!.metadata['actor'], { type: 'device', id: device.uuid });
  t.is(events[0]!.metadata['endpoint'], '/api/v1/device/events');
  t.is(events[0]!.metadata['causation_id'], undefined);
  const row = await app.deps.devices.get(device.uuid);
  if (row?.state.status !== 'registered') return t.fail();
  t.like(row.state.containers['1000']?.['main'], { status: 'crashed', exit_code: 139, restart_count: 3 });
  t.deepEqual(row.state.volumes, { '1000': ['data'] });
  t.is(row.last_seen_at, T0.toISOString(), 'the call is a contact');
});

test('refused whole, nothing written: unknown type, server-only type, bad data, too many or no events', async (t) => {
  const { app, device, send } = await setup();
  t.teardown(() => app.close());
  const before = await app.eventCount();
  const cases: [unknown, string][] = [
    [
      { events: [volume, { type: 'container.exploded', data: {} }] },
      'body.events.1.type: unknown event type "container.exploded"',
    ],
    [
      { events: [{ type: 'reconciliation.failed', data: { target_version: 1 } }] },
      'body.events.0.type: "reconciliation.failed" is recorded by the server, not sent by devices',
    ],
    [
      { events: [{ type: 'current_state.updated', data: {} }] },
      'body.events.0.type: "current_state.updated" is recorded by the server',
    ],
    [
      { events: [{ type: 'device.connection_lost', data: {} }] },
      'body.events.0.type: "device.connection_lost" is recorded by the server',
    ],
    [{ events: [{ type: 'container.started', data: { app_id: '1' } }] }, 'body.events.0.data.service_name: Required'],
    [
      { events: [{ type: 'container.crashed', data: { app_id: '1', service_name: 's', exit_code: 'boom' } }] },
      'body.events.0.data.exit_code: Expected number, received string',
    ],
    [{ events: [{ ...volume, observed_at: 'yesterday' }] }, 'body.events.0.observed_at: must be an ISO-8601 timestamp'],
    [{ events: Array.from({ length: 101 }, () => volume) }, 'body.events: at most 100 events per request'],
    [{ events: [] }, 'body.events: must hold at least one event'],
    [[volume], 'body: Expected object, received array'],
  ];
  for (const [body, message] of cases) {
    const response = await send(body);
    t.is(response.status, 400, message);
    t.is(response.body?.error?.code, 'invalid_request');
    t.true(String(response.body?.error?.message).startsWith(message), `${response.body?.error?.message} ≠ ${message}`);
  }
  t.is(await app.eventCount(), before);
  t.is((await app.deps.devices.get(device.uuid))?.last_seen_at, null, 'a refused request writes nothing');
});

test('fields devicetrail does not know are ignored (issue #15): listed in the answer, never stored; known ones stay strict', async (t) => {
  const { app, device, send } = await setup();
  t.teardown(() => app.close());
  const response = await send({
    events: [{ ...volume, extra: true }, { type: 'volume.removed', data: { app_id: '1000', name: 'data', size: 3 } }],
    batch: 'b-1',
  });
  t.is(response.status, 201, response.text);
  t.deepEqual(response.body.ignored_fields, ['body.batch', 'body.events.0.extra', 'body.events.1.data.size']);
  const events = (await deviceEvents(app, device.uuid)).slice(1);
  t.deepEqual(events.map((e) => e.data), [{ app_id: '1000', name: 'data' }, { app_id: '1000', name: 'data' }]);
  const known = await send({ events: [{ ...volume, data: { app_id: '1000', name: 7, size: 3 } }] });
  t.is(known.status, 400);
  t.regex(known.body.error.message, /^body\.events\.0\.data\.name: Expected string/);
});

test('exactly 100 events are accepted', async (t) => {
  const { app, send } = await setup();
  t.teardown(() => app.close());
  const response = await send({
    events: Array.from({ length: 100 }, (_, i) => ({ type: 'network.created', data: { app_id: 'a', name: `n${i}` } })),
  });
  t.is(response.status, 201, response.text);
  t.is(response.body.events_written, 100);
});

test('credentials: none → 401, an admin token → 403, a disabled device → 403 with nothing written', async (t) => {
  const { app, device, send } = await setup();
  t.teardown(() => app.close());
  t.is((await app.request('POST', '/api/v1/device/events', { body: { events: [volume] } })).status, 401);
  t.is((await send({ events: [volume] }, app.adminToken)).status, 403);
  expectStatus(
    await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
      token: app.adminToken,
      body: { is_active: false },
    }),
    200,
    'disable',
  );
  const before = await app.eventCount();
  const refused = await send({ events: [volume] });
  t.is(refused.status, 403);
  t.is(refused.body.error.code, 'device_inactive');
  t.is(await app.eventCount(), before);
});

test('a lost device that sends events is restored first (source api), then its events (source device)', async (t) => {
  const { app, clock, device, send, sweepers } = await setup();
  t.teardown(() => app.close());
  clock.set(new Date(T0.getTime() + 20 * 60_000));
  for (const sweeper of sweepers) await sweeper.runOnce();
  clock.set(new Date(T0.getTime() + 25 * 60_000));
  const answer = expectStatus(await send({ events: [volume] }), 201, 'events');
  const events = await deviceEvents(app, device.uuid);
  t.deepEqual(events.map((e) => [e.event_type, e.source]), [
    ['device.provisioned', 'api'],
    ['device.connection_lost', 'system'],
    ['device.connection_restored', 'api'],
    ['volume.created', 'device'],
  ]);
  // the answer names the restoration it appended (it was not in the answer before), and keeps
  // event_ids for the device's own events, in the order sent
  t.is(answer.body.restored_event_id, events[2]!.event_id);
  t.is(answer.body.events_written, 1);
  t.deepEqual(answer.body.event_ids, [events[3]!.event_id]);
  t.is(answer.body.version, 4);
  const again = expectStatus(await send({ events: [volume] }), 201, 'events again');
  t.is(again.body.restored_event_id, null, 'a device that is not lost restores nothing');
  t.like(events[2]!.data, { last_seen_at: T0.toISOString(), silent_ms: 25 * 60_000 });
});
