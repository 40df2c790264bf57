// Acceptance: a scripted device, driven through the HTTP API with an injected clock, leaves
// exactly the expected lifecycle in its event stream, type by type, with correct durations.
import test from 'ava';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { lifecycleScenario, runScenario, SCENARIO_START } from './lifecycle-scenario.ts';
import { deviceDriver, deviceEvents, startLifecycleApp } from './test-driver.ts';

const at = (offsetMs: number) => new Date(SCENARIO_START.getTime() + offsetMs).toISOString();
const s = 1000;
const min = 60 * s;

test('a scripted device produces exactly the expected ordered lifecycle events', async (t) => {
  const { app, clock, sweepers, sweeperErrors } = await startLifecycleApp(SCENARIO_START);
  t.teardown(() => app.close());
  const { uuid, driver } = await deviceDriver(app, clock, sweepers);
  await runScenario(lifecycleScenario, SCENARIO_START, driver);
  t.deepEqual(sweeperErrors, []);
  t.deepEqual(app.errors, []);

  const events = await deviceEvents(app, uuid);
  const expected: [type: string, timestamp: string, data?: Record<string, unknown>][] = [
    ['device.provisioned', at(0)],
    ['target_state.updated', at(10 * s), { version: 1 }],
    ['reconciliation.started', at(10 * s), { target_version: 1, apps_missing: ['1000', '2000'] }],
    // starts its apps: web (two services, a volume, a network) and the seed-shaped app 2000
    ['current_state.updated', at(1 * min)],
    ['network.created', at(1 * min), { app_id: '1000', name: 'web-net' }],
    ['volume.created', at(1 * min), { app_id: '1000', name: 'web-data' }],
    ['container.started', at(1 * min), {
      app_id: '1000',
      service_name: 'main',
      container_id: 'c-main-1',
      image: 'registry.local/web:1',
    }],
    ['container.started', at(1 * min), {
      app_id: '1000',
      service_name: 'worker',
      container_id: 'c-worker-1',
      restart_count: 0,
    }],
    ['container.started', at(1 * min), { app_id: '2000', service_name: '2000', container_id: 'abc123', image: null }],
    ['reconciliation.completed', at(1 * min), { target_version: 1, started_at: at(10 * s), duration_ms: 50 * s }],
    // crash 1: seen exited with a non-zero code, then running again
    ['current_state.updated', at(2 * min)],
    ['container.crashed', at(2 * min), { service_name: 'worker', exit_code: 137, restart_count: 0, status: 'Exited' }],
    ['current_state.updated', at(2 * min + 30 * s)],
    ['container.started', at(2 * min + 30 * s), { service_name: 'worker', restart_count: 1 }],
    // crash 2: only a restart count that went up between reports
    ['current_state.updated', at(4 * min)],
    ['container.crashed', at(4 * min), { service_name: 'worker', restart_count: 2, status: 'restarted' }],
    ['container.started', at(4 * min), { service_name: 'worker', restart_count: 2 }],
    // a new target: the main service must run web:2
    ['target_state.updated', at(5 * min), { version: 2 }],
    ['reconciliation.started', at(5 * min), {
      target_version: 2,
      apps_missing: [],
      apps_extra: [],
      config_differs: [],
      services: [{
        app_id: '1000',
        service_name: 'main',
        problem: 'wrong_image',
        expected: 'registry.local/web:2',
        actual: 'registry.local/web:1',
      }],
    }],
    ['current_state.updated', at(6 * min)],
    ['current_state.updated', at(7 * min)],
    ['image.pulled', at(7 * min), {
      app_id: '1000',
      service_name: 'main',
      image: 'registry.local/web:2',
      previous_image: 'registry.local/web:1',
    }],
    // converges 3 minutes after the target update: the old container replaced by the new one
    ['current_state.updated', at(8 * min)],
    ['container.stopped', at(8 * min), { service_name: 'main', container_id: 'c-main-1', status: 'replaced' }],
    ['container.started', at(8 * min), {
      service_name: 'main',
      container_id: 'c-main-2',
      image: 'registry.local/web:2',
    }],
    ['reconciliation.completed', at(8 * min), { target_version: 2, started_at: at(5 * min), duration_ms: 3 * min }],
    // silent after its poll at 8m30s; the sweep at 15m is too early, the one at 25m finds it
    ['device.connection_lost', at(25 * min), {
      last_seen_at: at(8 * min + 30 * s),
      silent_ms: 16 * min + 30 * s,
      timeout_ms: 15 * min,
    }],
    ['device.connection_restored', at(40 * min), {
      last_seen_at: at(8 * min + 30 * s),
      lost_at: at(25 * min),
      silent_ms: 31 * min + 30 * s,
    }],
    // its report at 40m10s carries only metrics: no event (issue #15), a contact all the same
  ];
  t.deepEqual(events.map((e) => e.event_type), expected.map(([type]) => type), 'event types, in order');
  expected.forEach(([type, timestamp, data], i) => {
    const event = events[i]!;
    t.is(event.timestamp, timestamp, `#${i + 1} ${type}: timestamp`);
    for (const [key, value] of Object.entries(data ?? {})) {
      t.deepEqual(event.data[key], value, `#${i + 1} ${type}: data.${key}`);
    }
  });

  // derived events point at the report or target update that caused them, in the same transaction
  const byId = new Map(events.map((e) => [e.event_id, e]));
  for (const event of events) {
    const derived = /^(container|image|volume|network|reconciliation)\./.test(event.event_type) &&
      event.source !== 'system';
    const causationId = event.metadata['causation_id'] as string | undefined;
    if (!derived) {
      t.is(causationId, undefined, `${event.event_type} v${event.aggregate_version} has no cause`);
      continue;
    }
    const cause = byId.get(causationId ?? '');
    t.truthy(cause, `${event.event_type} v${event.aggregate_version} names its cause`);
    t.true(cause!.event_type === 'current_state.updated' || cause!.event_type === 'target_state.updated');
    t.is(cause!.transaction_id, event.transaction_id, 'appended in the same transaction as its cause');
    t.true(cause!.aggregate_version < event.aggregate_version);
  }
  const lost = events.find((e) => e.event_type === 'device.connection_lost')!;
  t.is(lost.source, 'system');
  t.deepEqual(lost.metadata['actor'], { type: 'system', id: 'connectivity-sweeper' });
  const restored = events.find((e) => e.event_type === 'device.connection_restored')!;
  t.is(restored.metadata['endpoint'], '/api/v1/device/:uuid/target-state');
  t.deepEqual(restored.metadata['actor'], { type: 'device', id: uuid });

  // the folded state knows what runs, on which images, with which volumes and networks
  const state = fold(
    events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
    initialState(),
  );
  if (state.status !== 'registered') return t.fail();
  t.deepEqual(
    Object.entries(state.containers).flatMap(([appId, services]) =>
      Object.values(services).map((c) => `${appId}/${c.service_name}:${c.status}:${c.container_id}:${c.restart_count}`)
    ),
    [
      '1000/main:running:c-main-2:0',
      '1000/worker:running:c-worker-1:2',
      '2000/2000:running:abc123:0',
    ],
  );
  t.deepEqual(Object.keys(state.images).sort(), ['registry.local/web:2', 'registry.local/worker:1']);
  t.deepEqual(state.volumes, { '1000': ['web-data'] });
  t.deepEqual(state.networks, { '1000': ['web-net'] });
  t.deepEqual(state.reconciliation, {
    status: 'completed',
    target_version: 2,
    started_at: at(5 * min),
    ended_at: at(8 * min),
    duration_ms: 3 * min,
  });
  t.deepEqual(state.connectivity, { status: 'online', since: at(40 * min) });
  // and the read model holds the same fold
  const row = await app.deps.devices.get(uuid);
  t.deepEqual(row?.state, state);
  t.is(row?.last_seen_at, at(40 * min + 10 * s));
});
