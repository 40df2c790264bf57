// The report path with lifecycle: the seed's examples unchanged, reconciliation outcomes
// through the API, connectivity around disabled and silent devices, and the read model.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { fold, FOLD_VERSION } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { countEvents, deviceEvents, expectStatus, startLifecycleApp } from './test-driver.ts';

const T0 = new Date('2026-07-01T06:00:00.000Z');
const min = 60_000;
const seedUuid = '12345678-1234-1234-1234-123456789abc';
// the seed's bodies, verbatim (the target's "services": [...] made valid JSON as in the README)
const seedRegister = {
  uuid: seedUuid,
  deviceName: 'test-device-001',
  deviceType: 'raspberry-pi-4',
  deviceApiKey: 'secret-key',
  macAddress: 'b8:27:eb:12:34:56',
};
const seedTarget = {
  apps: { '1000': { appId: 1000, appName: 'my-app', services: [] } },
  config: { DEVICE_HOSTNAME: 'my-device' },
};
const seedReport = {
  [seedUuid]: {
    apps: { '1000': { status: 'running', containerId: 'abc123' } },
    ip_address: '192.168.1.100',
    cpu_usage: 25.5,
    memory_usage: 45.2,
  },
};

async function setup() {
  const env = await startLifecycleApp(T0);
  const { key } = await env.app.createProvisioningKey();
  const at = (offsetMs: number) => env.clock.set(new Date(T0.getTime() + offsetMs));
  const sweep = async () => {
    for (const sweeper of env.sweepers) await sweeper.runOnce();
  };
  const register = async () => {
    const device = await env.app.registerDevice(key);
    expectStatus(device.response, 201, 'register');
    return device;
  };
  return { ...env, key, at, sweep, register };
}

const types = async (env: Awaited<ReturnType<typeof setup>>, uuid: string) =>
  (await deviceEvents(env.app, uuid)).map((e) => e.event_type);

test("the seed's examples work unchanged and derive only what they imply", async (t) => {
  const env = await setup();
  const { app, at } = env;
  t.teardown(() => app.close());
  expectStatus(
    await app.request('POST', '/api/v1/device/register', { token: env.key, body: seedRegister }),
    201,
    'register',
  );
  at(1 * min);
  expectStatus(
    await app.request('POST', `/api/v1/devices/${seedUuid}/target-state`, { token: app.adminToken, body: seedTarget }),
    200,
    'target',
  );
  at(2 * min);
  const report = expectStatus(
    await app.request('PATCH', '/api/v1/device/state', { token: 'secret-key', body: seedReport }),
    200,
    'report',
  );
  t.true(report.body.devices[seedUuid].in_sync);
  at(3 * min);
  t.is(
    (await app.request('PATCH', '/api/v1/device/state', { token: 'secret-key', body: seedReport })).body.events_written,
    0,
    'the same report again: nothing',
  );
  at(4 * min);
  for (const is_active of [false, true]) {
    expectStatus(
      await app.request('PATCH', `/api/v1/devices/${seedUuid}/active`, { token: app.adminToken, body: { is_active } }),
      200,
      'toggle',
    );
  }
  const events = await deviceEvents(app, seedUuid);
  t.deepEqual(events.map((e) => e.event_type), [
    'device.provisioned',
    'target_state.updated',
    'reconciliation.started',
    'current_state.updated',
    'container.started',
    'reconciliation.completed',
    'device.offline',
    'device.online',
  ]);
  t.deepEqual(events[4]!.data, {
    app_id: '1000',
    service_name: '1000',
    container_id: 'abc123',
    image: null,
    status: 'running',
    exit_code: null,
    restart_count: null,
  });
  t.deepEqual(events[5]!.data, {
    target_version: 1,
    started_at: new Date(T0.getTime() + min).toISOString(),
    duration_ms: min,
  });
  t.deepEqual(events[3]!.data, {
    apps: seedReport[seedUuid]!.apps,
    system: { ip_address: '192.168.1.100' },
    resources: { cpu_usage: 25.5, memory_usage: 45.2 },
    apps_count: 1,
  });
});

test('reconciliation through the API: a rejected update fails it, a newer target supersedes it, the sweeper times it out', async (t) => {
  const env = await setup();
  const { app, at, sweep } = env;
  t.teardown(() => app.close());
  const device = await env.register();
  const setTarget = async (image: string) =>
    expectStatus(
      await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
        token: app.adminToken,
        body: { apps: { a: { services: [{ serviceName: 's', image }] } }, config: {} },
      }),
      200,
      'target',
    );
  const report = async (body: Record<string, unknown>) =>
    expectStatus(
      await app.request('PATCH', '/api/v1/device/state', { token: device.key, body: { [device.uuid]: body } }),
      200,
      'report',
    );

  await setTarget('i:1');
  at(1 * min);
  await report({ update_status: 'Rejected' });
  at(2 * min);
  await setTarget('i:2');
  at(3 * min);
  await setTarget('i:3');
  at(32 * min);
  await sweep();
  at(33 * min);
  await sweep();
  at(40 * min);
  await report({ apps: { a: { services: { s: { status: 'Running', containerId: 'c', image: 'i:3' } } } } });
  const events = (await deviceEvents(app, device.uuid)).filter((e) => e.event_type.startsWith('reconciliation.'));
  t.deepEqual(
    events.map((
      e,
    ) => [e.event_type, e.data['target_version'], e.data['reason'] ?? null, e.data['duration_ms'] ?? null, e.source]),
    [
      ['reconciliation.started', 1, null, null, 'api'],
      ['reconciliation.failed', 1, 'update_rejected', 1 * min, 'api'],
      ['reconciliation.started', 2, null, null, 'api'],
      ['reconciliation.failed', 2, 'superseded', 1 * min, 'api'],
      ['reconciliation.started', 3, null, null, 'api'],
      ['reconciliation.failed', 3, 'timeout', 30 * min, 'system'], // not at 32m (29m old), at 33m
    ],
    'the late convergence completes nothing: the reconciliation already failed',
  );
  t.deepEqual(events[5]!.metadata['actor'], { type: 'system', id: 'reconciliation-sweeper' });
  t.is(events[5]!.data['timeout_ms'], 30 * min);
  t.deepEqual(env.sweeperErrors, []);
});

test('connectivity: a device that never calls is lost after its registration; a disabled one never; polls while disabled count as contact', async (t) => {
  const env = await setup();
  const { app, at, sweep } = env;
  t.teardown(() => app.close());
  const silent = await env.register();
  const disabled = await env.register();
  const pollingWhileDisabled = await env.register();
  for (const device of [disabled, pollingWhileDisabled]) {
    expectStatus(
      await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
        token: app.adminToken,
        body: { is_active: false },
      }),
      200,
      'disable',
    );
  }
  at(14 * min);
  await sweep();
  t.is(await countEvents(app, silent.uuid, 'device.connection_lost'), 0, 'not yet');
  at(50 * min);
  t.is(
    (await app.request('GET', `/api/v1/device/${pollingWhileDisabled.uuid}/target-state`, {
      token: pollingWhileDisabled.key,
    })).status,
    403,
  );
  expectStatus(
    await app.request('PATCH', `/api/v1/devices/${pollingWhileDisabled.uuid}/active`, {
      token: app.adminToken,
      body: { is_active: true },
    }),
    200,
    'enable',
  );
  at(55 * min);
  await sweep();
  t.deepEqual(await types(env, silent.uuid), ['device.provisioned', 'device.connection_lost']);
  t.like((await deviceEvents(app, silent.uuid))[1]!.data, { last_seen_at: T0.toISOString(), silent_ms: 55 * min });
  t.deepEqual(
    await types(env, disabled.uuid),
    ['device.provisioned', 'device.offline'],
    'a disabled device is not reported lost',
  );
  t.deepEqual(
    await types(env, pollingWhileDisabled.uuid),
    ['device.provisioned', 'device.offline', 'device.online'],
    'its refused polls were contacts',
  );
});

test('connectivity: an unchanged report restores a lost device, and two concurrent polls restore it once', async (t) => {
  const env = await setup();
  const { app, at, sweep } = env;
  t.teardown(() => app.close());
  const reporter = await env.register();
  const poller = await env.register();
  const body = { [reporter.uuid]: { local_ip: '10.0.0.5', cpu_usage: 5 } };
  expectStatus(await app.request('PATCH', '/api/v1/device/state', { token: reporter.key, body }), 200, 'report');
  at(16 * min);
  await sweep();
  at(20 * min);
  const unchanged = expectStatus(
    await app.request('PATCH', '/api/v1/device/state', { token: reporter.key, body }),
    200,
    'same report',
  );
  t.is(unchanged.body.events_written, 1);
  t.deepEqual(await types(env, reporter.uuid), [
    'device.provisioned',
    'current_state.updated',
    'device.connection_lost',
    'device.connection_restored',
  ]);
  const polls = await Promise.all(
    [1, 2, 3].map(() => app.request('GET', `/api/v1/device/${poller.uuid}/target-state`, { token: poller.key })),
  );
  t.deepEqual(polls.map((p) => p.status), [200, 200, 200]);
  t.deepEqual(await types(env, poller.uuid), [
    'device.provisioned',
    'device.connection_lost',
    'device.connection_restored',
  ]);
  t.deepEqual(app.errors, []);
});

test('concurrent reports with lifecycle changes: every derivation sees the state before it, and the read model stays the fold', async (t) => {
  const env = await setup();
  const { app } = env;
  t.teardown(() => app.close());
  const device = await env.register();
  const statuses = ['Running', 'exited', 'Running', 'dead', 'Running', 'Downloading'];
  const responses = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      app.request('PATCH', '/api/v1/device/state', {
        token: device.key,
        body: {
          [device.uuid]: {
            apps: { a: { services: { s: { status: statuses[i % statuses.length]!, containerId: 'c', exitCode: 1 } } } },
            cpu_usage: i,
          },
        },
      })),
  );
  t.true(responses.every((r) => r.status === 200), responses.map((r) => r.status).join(','));
  const events = await deviceEvents(app, device.uuid);
  t.deepEqual(events.map((e) => e.aggregate_version), events.map((_, i) => i + 1));
  const folded = fold(
    events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
    initialState(),
  );
  const row = await app.deps.devices.get(device.uuid);
  t.deepEqual(row?.state, folded);
  // the container's transitions alternate: no two starts (or two crashes) in a row
  const transitions = events.map((e) => e.event_type).filter((type) => type.startsWith('container.'));
  t.true(transitions.every((type, i) => i === 0 || type !== transitions[i - 1]), transitions.join(' '));
});

test('a read-model row folded by an older FOLD_VERSION is refolded from its events when next loaded', async (t) => {
  const env = await setup();
  const { app } = env;
  t.teardown(() => app.close());
  const device = await env.register();
  expectStatus(
    await app.request('PATCH', '/api/v1/device/state', {
      token: device.key,
      body: { [device.uuid]: { apps: { a: { status: 'running', containerId: 'c1' } } } },
    }),
    200,
    'report',
  );
  // what a row written before the lifecycle fields existed looks like
  await app.db.pool.query(sql.unsafe`
    UPDATE devices SET fold_version = 1,
      state = state - 'containers' - 'images' - 'volumes' - 'networks' - 'reconciliation' - 'connectivity'
     WHERE uuid = ${device.uuid}`);
  const report = await app.request('PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [device.uuid]: { apps: { a: { status: 'exited', exitCode: 1, containerId: 'c1' } } } },
  });
  t.is(report.status, 200, report.text);
  t.is(report.body.events_written, 2, 'current_state.updated and container.crashed, derived from the refolded state');
  const row = await app.deps.devices.get(device.uuid);
  const events = await deviceEvents(app, device.uuid);
  t.deepEqual(
    row?.state,
    fold(
      events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
      initialState(),
    ),
  );
  const foldVersion = await app.db.pool.oneFirst(
    sql.type(z.object({ fold_version: z.number() }))`SELECT fold_version FROM devices WHERE uuid = ${device.uuid}`,
  );
  t.is(foldVersion, FOLD_VERSION);
});
