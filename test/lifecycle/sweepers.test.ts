// The sweepers with several instances: two of each, on separate pools, running at once,
// write each reconciliation.failed and device.connection_lost exactly once, and a device
// calling in while they run is never left lost.
import test from 'ava';
import type { DatabasePool } from 'slonik';
import { createConnectivitySweeper } from '../../infra/devices/connectivity-sweeper.ts';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { createReconciliationSweeper } from '../../infra/devices/reconciliation-sweeper.ts';
import type { Sweeper } from '../../infra/devices/sweeper.ts';
import { deviceEvents, expectStatus, startLifecycleApp } from './test-driver.ts';

const T0 = new Date('2026-05-04T12:00:00.000Z');
const min = 60_000;
const timeouts = { reconciliationMs: 30 * min, connectivityMs: 15 * min };
const target = { apps: { '1': { appId: 1, services: [{ serviceName: 'main', image: 'img:1' }] } }, config: {} };
const converged = { apps: { '1': { services: { main: { status: 'Running', containerId: 'c1', image: 'img:1' } } } } };

async function setup(devices: number) {
  const env = await startLifecycleApp(T0, timeouts);
  const { app, clock } = env;
  const { key } = await app.createProvisioningKey();
  const fleet: { uuid: string; key: string }[] = [];
  for (let i = 0; i < devices; i += 1) {
    const device = await app.registerDevice(key);
    expectStatus(device.response, 201, 'register');
    expectStatus(
      await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, { token: app.adminToken, body: target }),
      200,
      'target',
    );
    expectStatus(
      await app.request('GET', `/api/v1/device/${device.uuid}/target-state`, { token: device.key }),
      200,
      'poll',
    );
    fleet.push({ uuid: device.uuid, key: device.key });
  }
  const poolB = await createDatabasePool(app.db.url, { maximumPoolSize: 4 });
  const errors: unknown[] = [];
  const instance = (pool: DatabasePool): Sweeper[] => {
    const options = {
      pool,
      clock: clock.read,
      intervalMs: 60_000,
      batchSize: 7,
      onError: (_m: string, e: unknown) => {
        errors.push(e);
      },
    };
    return [
      createReconciliationSweeper({ ...options, timeoutMs: timeouts.reconciliationMs }),
      createConnectivitySweeper({ ...options, timeoutMs: timeouts.connectivityMs }),
    ];
  };
  const [reconcileA, connectA] = instance(app.db.pool);
  const [reconcileB, connectB] = instance(poolB);
  return {
    ...env,
    fleet,
    errors,
    reconcileA: reconcileA!,
    connectA: connectA!,
    reconcileB: reconcileB!,
    connectB: connectB!,
    close: async () => {
      await poolB.end();
      await app.close();
    },
  };
}

const typesOf = async (env: Awaited<ReturnType<typeof setup>>, uuid: string, types: readonly string[]) =>
  (await deviceEvents(env.app, uuid)).map((e) => e.event_type).filter((type) => types.includes(type));

test('two instances on separate pools write each reconciliation.failed and device.connection_lost once', async (t) => {
  const env = await setup(20);
  t.teardown(env.close);
  const { clock, fleet, reconcileA, reconcileB, connectA, connectB } = env;

  clock.set(new Date(T0.getTime() + 14 * min));
  t.deepEqual(await Promise.all([reconcileA.runOnce(), reconcileB.runOnce(), connectA.runOnce(), connectB.runOnce()]), [
    0,
    0,
    0,
    0,
  ], 'nothing is due yet');

  clock.set(new Date(T0.getTime() + 31 * min));
  const written = await Promise.all([
    reconcileA.runOnce(),
    reconcileB.runOnce(),
    connectA.runOnce(),
    connectB.runOnce(),
    connectB.runOnce(),
    reconcileB.runOnce(),
    connectA.runOnce(),
    reconcileA.runOnce(),
  ]);
  t.deepEqual(env.errors, []);
  t.is(
    written[0]! + written[1]! + written[5]! + written[7]!,
    fleet.length,
    'reconciliation.failed written once per device in all',
  );
  t.is(
    written[2]! + written[3]! + written[4]! + written[6]!,
    fleet.length,
    'device.connection_lost written once per device in all',
  );
  for (const { uuid } of fleet) {
    const events = await deviceEvents(env.app, uuid);
    t.deepEqual(events.filter((e) => e.event_type === 'reconciliation.failed').map((e) => e.data['reason']), [
      'timeout',
    ], uuid);
    t.is(events.filter((e) => e.event_type === 'device.connection_lost').length, 1, uuid);
  }
  t.deepEqual(await Promise.all([reconcileA.runOnce(), reconcileB.runOnce(), connectA.runOnce(), connectB.runOnce()]), [
    0,
    0,
    0,
    0,
  ], 'a later sweep finds nothing new');
});

test('devices calling in while both instances sweep: lost then restored, or neither — never left lost', async (t) => {
  const env = await setup(16);
  t.teardown(env.close);
  const { app, clock, fleet, connectA, connectB } = env;
  clock.set(new Date(T0.getTime() + 20 * min));
  const calls = fleet.map((
    { uuid, key },
    i,
  ) => (i % 2 === 0
    ? app.request('GET', `/api/v1/device/${uuid}/target-state`, { token: key })
    : app.request('PATCH', '/api/v1/device/state', { token: key, body: { [uuid]: { cpu_usage: i } } }))
  );
  const [sweptA, sweptB, ...responses] = await Promise.all([connectA.runOnce(), connectB.runOnce(), ...calls]);
  t.deepEqual(env.errors, []);
  t.deepEqual(app.errors, []);
  for (const response of responses) t.is(response.status, 200);
  let lost = 0;
  for (const { uuid } of fleet) {
    const types = await typesOf(env, uuid, ['device.connection_lost', 'device.connection_restored']);
    t.true(
      types.length === 0 ||
        (types.length === 2 && types[0] === 'device.connection_lost' && types[1] === 'device.connection_restored'),
      `${uuid}: ${types.join(', ')}`,
    );
    lost += types.length / 2;
    const row = await app.deps.devices.get(uuid);
    t.is(
      row?.state.status === 'registered' && row.state.connectivity.status,
      'online',
      `${uuid} is online after calling in`,
    );
  }
  t.log(`lost then restored: ${lost} of ${fleet.length}`);
  t.is(sweptA + sweptB, lost, 'every loss written was counted once');
});

test('a converging report racing both reconciliation sweepers: exactly one of completed or failed', async (t) => {
  const env = await setup(12);
  t.teardown(env.close);
  const { app, clock, fleet, reconcileA, reconcileB } = env;
  clock.set(new Date(T0.getTime() + 45 * min));
  const reports = fleet.map(({ uuid, key }) =>
    app.request('PATCH', '/api/v1/device/state', { token: key, body: { [uuid]: converged } })
  );
  const [, , ...responses] = await Promise.all([reconcileA.runOnce(), reconcileB.runOnce(), ...reports]);
  t.deepEqual(env.errors, []);
  for (const response of responses) t.is(response.status, 200);
  for (const { uuid } of fleet) {
    const outcomes = await typesOf(env, uuid, ['reconciliation.completed', 'reconciliation.failed']);
    t.is(outcomes.length, 1, `${uuid}: ${outcomes.join(', ')}`);
  }
});
