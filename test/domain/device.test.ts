// Device decider: given(events) → when(command) → then(events or error).
import test from 'ava';
import { decide, type DeviceCommand } from '../../domain/device/decide.ts';
import { computeDrift } from '../../domain/device/drift.ts';
import { evolve, fold } from '../../domain/device/evolve.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import { type DeviceState, initialState } from '../../domain/device/state.ts';
import { DomainError } from '../../domain/errors.ts';

const t0 = '2026-11-01T10:00:00.000Z';
const t1 = '2026-11-01T10:01:00.000Z';
const t2 = '2026-11-01T10:02:00.000Z';

const given = (...events: DeviceEvent[]): DeviceState => fold(events, initialState());
const when = (state: DeviceState, command: DeviceCommand) => decide(command, state);

const provisioned: DeviceEvent = {
  type: 'device.provisioned',
  timestamp: t0,
  data: {
    device_name: 'd1',
    device_type: 'rpi4',
    fleet_id: 'f1',
    ip_address: null,
    mac_address: 'b8:27:eb:12:34:56',
    os_version: null,
    supervisor_version: null,
    provisioning_key_id: 'k1',
  },
};
const target = {
  apps: { '1000': { appId: 1000, appName: 'my-app', services: [{ serviceName: 'main', image: 'img:1' }] } },
  config: { HOSTNAME: 'x' },
};
const targetSet: DeviceEvent = {
  type: 'target_state.updated',
  timestamp: t1,
  data: { version: 1, new_state: target, old_state: null, apps_added: ['1000'], apps_removed: [], apps_count: 1 },
};
const runningReport: DeviceEvent = {
  type: 'current_state.updated',
  timestamp: t2,
  data: {
    apps: { '1000': { status: 'running', containerId: 'abc' } },
    system: { ip_address: '10.0.0.2' },
    resources: { cpu_usage: 5 },
    apps_count: 1,
  },
};

test('register: an unknown device is provisioned with its identity and active', (t) => {
  const events = when(given(), { type: 'register_device', now: t0, ...provisioned.data } as DeviceCommand);
  t.deepEqual(events, [provisioned]);
  const state = given(...events);
  t.is(state.status, 'registered');
  if (state.status !== 'registered') return;
  t.true(state.is_active);
  t.is(state.version, 1);
  t.is(state.fleet_id, 'f1');
});

test('register: a registered device cannot register again', (t) => {
  const error = t.throws(
    () => when(given(provisioned), { type: 'register_device', now: t1, ...provisioned.data } as DeviceCommand),
    { instanceOf: DomainError },
  );
  t.is(error?.code, 'device_already_registered');
});

test('set target: first target is version 1 with apps added and count, and opens a reconciliation', (t) => {
  const events = when(given(provisioned), { type: 'set_target_state', now: t1, target });
  t.deepEqual(events, [targetSet, {
    type: 'reconciliation.started',
    timestamp: t1,
    data: { target_version: 1, apps_missing: ['1000'], apps_extra: [], services: [], config_differs: [] },
  }]);
});

test('set target: next version diffs apps against the old target', (t) => {
  const next = { apps: { '2000': { appName: 'other' } }, config: {} };
  const [event] = when(given(provisioned, targetSet), { type: 'set_target_state', now: t2, target: next });
  t.is(event?.type, 'target_state.updated');
  if (event?.type !== 'target_state.updated') return;
  t.is(event.data.version, 2);
  t.deepEqual(event.data.old_state, target);
  t.deepEqual(event.data.apps_added, ['2000']);
  t.deepEqual(event.data.apps_removed, ['1000']);
  t.is(event.data.apps_count, 1);
});

test('set target: a stale expected version is refused', (t) => {
  const error = t.throws(
    () => when(given(provisioned, targetSet), { type: 'set_target_state', now: t2, target, expected_version: 0 }),
    { instanceOf: DomainError },
  );
  t.is(error?.code, 'target_version_mismatch');
  t.is(
    when(given(provisioned, targetSet), { type: 'set_target_state', now: t2, target, expected_version: 1 })[0]?.type,
    'target_state.updated',
  );
});

test('set target: unknown device is not found', (t) => {
  const error = t.throws(() => when(given(), { type: 'set_target_state', now: t1, target }), {
    instanceOf: DomainError,
  });
  t.is(error?.code, 'device_not_found');
});

test('report: a report produces current_state.updated with apps_count (and the container it shows started)', (t) => {
  const events = when(given(provisioned, targetSet), {
    type: 'report_state',
    now: t2,
    apps: { '1000': { status: 'running', containerId: 'abc' } },
    system: { ip_address: '10.0.0.2' },
    resources: { cpu_usage: 5 },
  });
  t.deepEqual(events, [runningReport, {
    type: 'container.started',
    timestamp: t2,
    data: {
      app_id: '1000',
      service_name: '1000',
      container_id: 'abc',
      image: null,
      status: 'running',
      exit_code: null,
      restart_count: null,
    },
  }]);
});

test('report: the same report again changes nothing and appends nothing', (t) => {
  const events = when(given(provisioned, targetSet, runningReport), {
    type: 'report_state',
    now: '2026-11-01T10:05:00.000Z',
    apps: { '1000': { status: 'running', containerId: 'abc' } },
    system: { ip_address: '10.0.0.2' },
    resources: { cpu_usage: 5 },
  });
  t.deepEqual(events, []);
});

test('report: a partial report merges system and resources, keeps apps', (t) => {
  const state = given(provisioned, targetSet, runningReport);
  const [event] = when(state, {
    type: 'report_state',
    now: '2026-11-01T10:05:00.000Z',
    system: { hostname: 'edge-1' },
    resources: { memory_usage: 40 },
  });
  t.truthy(event);
  const after = evolve(state, event!);
  if (after.status !== 'registered') return t.fail();
  t.deepEqual(after.current?.resources, { cpu_usage: 5, memory_usage: 40 });
  t.deepEqual(after.current?.system, { ip_address: '10.0.0.2', hostname: 'edge-1' });
  t.deepEqual(Object.keys(after.current?.apps ?? {}), ['1000']);
});

test('report: telemetry is not state; a report whose only changes are metrics (resources, uptime) appends nothing', (t) => {
  const state = given(provisioned, targetSet, runningReport);
  const metricsOnly = {
    type: 'report_state' as const,
    now: '2026-11-01T10:05:00.000Z',
    apps: { '1000': { status: 'running', containerId: 'abc' } },
    system: { uptime: 3600 },
    resources: { cpu_usage: 97, memory_usage: 80, temperature: 71.5 },
  };
  t.deepEqual(when(state, metricsOnly), []);
  t.deepEqual(when(state, { ...metricsOnly, apps: undefined }), [], 'nor without apps');
  // a state change carries the metrics it was sent with
  const [changed] = when(state, { ...metricsOnly, system: { uptime: 3600, ip_address: '10.0.0.7' } });
  t.like(changed, {
    type: 'current_state.updated',
    data: { system: { uptime: 3600, ip_address: '10.0.0.7' }, resources: metricsOnly.resources },
  });
  // a first report of nothing but metrics has no state to record either
  t.deepEqual(
    when(given(provisioned), { type: 'report_state', now: t2, system: { uptime: 5 }, resources: { cpu_usage: 1 } }),
    [],
  );
});

test('report: a disabled device may not report', (t) => {
  const offline: DeviceEvent = {
    type: 'device.offline',
    timestamp: t1,
    data: {
      device_name: 'd1',
      device_type: 'rpi4',
      previous_state: 'active',
      new_state: 'inactive',
      reason: null,
      changed_at: t1,
    },
  };
  const error = t.throws(
    () => when(given(provisioned, offline), { type: 'report_state', now: t2, system: {}, resources: { cpu_usage: 1 } }),
    { instanceOf: DomainError },
  );
  t.is(error?.code, 'device_inactive');
});

test('set active: disabling gives device.offline with previous/new state and reason', (t) => {
  const events = when(given(provisioned), { type: 'set_active', now: t1, is_active: false, reason: 'maintenance' });
  t.deepEqual(events, [{
    type: 'device.offline',
    timestamp: t1,
    data: {
      device_name: 'd1',
      device_type: 'rpi4',
      previous_state: 'active',
      new_state: 'inactive',
      reason: 'maintenance',
      changed_at: t1,
    },
  }]);
  const state = given(provisioned, ...events);
  t.is(state.status === 'registered' && state.is_active, false);
});

test('set active: enabling a disabled device gives device.online', (t) => {
  const off = when(given(provisioned), { type: 'set_active', now: t1, is_active: false });
  const on = when(given(provisioned, ...off), { type: 'set_active', now: t2, is_active: true });
  t.is(on[0]?.type, 'device.online');
  t.is(
    given(provisioned, ...off, ...on).status === 'registered' &&
      (given(provisioned, ...off, ...on) as { is_active: boolean }).is_active,
    true,
  );
});

test('set active: no change, no event', (t) => {
  t.deepEqual(when(given(provisioned), { type: 'set_active', now: t1, is_active: true }), []);
});

test('evolve: drift starts at the target update and ends with the converging report', (t) => {
  const drifting = given(provisioned, targetSet);
  if (drifting.status !== 'registered') return t.fail();
  t.false(drifting.drift.in_sync);
  t.deepEqual(drifting.drift.apps_missing, ['1000']);
  t.is(drifting.drift_since, t1);
  const synced = given(provisioned, targetSet, runningReport);
  if (synced.status !== 'registered') return t.fail();
  t.true(synced.drift.in_sync);
  t.is(synced.drift_since, null);
  t.is(synced.version, 3);
});

test('drift: missing and extra apps, stopped service, other image, differing config', (t) => {
  const drift = computeDrift(
    {
      apps: { a: { services: [{ serviceName: 's1', image: 'i:2' }, { serviceName: 's2' }] }, b: {} },
      config: { K: 1, L: 'x' },
    },
    {
      apps: {
        a: { services: { s1: { status: 'running', image: 'i:1' }, s2: { status: 'exited' } } },
        c: { status: 'running' },
      },
      config: { K: 1, L: 'y' },
    },
  );
  t.false(drift.in_sync);
  t.deepEqual(drift.apps_missing, ['b']);
  t.deepEqual(drift.apps_extra, ['c']);
  t.deepEqual(drift.services.map((s) => `${s.service_name}:${s.problem}`), ['s1:wrong_image', 's2:not_running']);
  t.deepEqual(drift.config_differs, ['L']);
});

test('drift: no target means in sync; config is ignored when the device does not report it', (t) => {
  t.true(computeDrift(null, null).in_sync);
  t.true(computeDrift({ apps: { a: {} }, config: { K: 1 } }, { apps: { a: { status: 'Running' } } }).in_sync);
});
