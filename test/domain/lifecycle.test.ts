// Lifecycle derivation, reconciliation and connectivity in the pure domain:
// given(events) → when(command or report) → then(events).
import test from 'ava';
import { causationIndexes, decide, type DeviceCommand } from '../../domain/device/decide.ts';
import { fold } from '../../domain/device/evolve.ts';
import type { DeviceEvent, ReportedApp, StateReport } from '../../domain/device/events.ts';
import { deriveLifecycle } from '../../domain/device/lifecycle.ts';
import { type DeviceState, initialState, type RegisteredDevice } from '../../domain/device/state.ts';
import { DomainError } from '../../domain/errors.ts';

const T = (minute: number, second = 0) => new Date(Date.UTC(2026, 10, 1, 10, minute, second)).toISOString();

const provisioned: DeviceEvent = {
  type: 'device.provisioned',
  timestamp: T(0),
  data: {
    device_name: 'd1',
    device_type: 'rpi4',
    fleet_id: 'f1',
    ip_address: null,
    mac_address: null,
    os_version: null,
    supervisor_version: null,
    provisioning_key_id: 'k1',
  },
};

/** Folds events and returns the registered device. */
function given(...events: DeviceEvent[]): RegisteredDevice {
  const state = fold(events, initialState());
  if (state.status !== 'registered') throw new Error('not registered');
  return state;
}

/** Runs a command and returns its events and the state after them. */
function when(state: DeviceState, command: DeviceCommand) {
  const events = decide(command, state);
  return { events, after: fold(events, state) as RegisteredDevice };
}

const report = (now: string, apps?: Record<string, ReportedApp>, extra: Partial<StateReport> = {}): DeviceCommand => ({
  type: 'report_state',
  now,
  apps,
  system: {},
  resources: {},
  ...extra,
});

/** Applies reports one after another (each through decide), returning the last step. */
function reports(state: DeviceState, ...steps: DeviceCommand[]) {
  let result = { events: [] as DeviceEvent[], after: state as RegisteredDevice };
  for (const step of steps) result = when(result.after, step);
  return result;
}

const types = (events: readonly DeviceEvent[]) => events.map((e) => e.type);
const svc = (status: string, fields: Record<string, unknown> = {}) => ({ status, ...fields });

test("the seed's report shape derives one container.started, and nothing again for the same report", (t) => {
  const seedReport = report(T(1), { '1000': { status: 'running', containerId: 'abc123' } }, {
    system: { ip_address: '192.168.1.100' },
    resources: { cpu_usage: 25.5, memory_usage: 45.2 },
  });
  const first = when(given(provisioned), seedReport);
  t.deepEqual(first.events, [
    {
      type: 'current_state.updated',
      timestamp: T(1),
      data: {
        apps: { '1000': { status: 'running', containerId: 'abc123' } },
        system: { ip_address: '192.168.1.100' },
        resources: { cpu_usage: 25.5, memory_usage: 45.2 },
        apps_count: 1,
      },
    },
    {
      type: 'container.started',
      timestamp: T(1),
      data: {
        app_id: '1000',
        service_name: '1000',
        container_id: 'abc123',
        image: null,
        status: 'running',
        exit_code: null,
        restart_count: null,
      },
    },
  ]);
  t.deepEqual(when(first.after, { ...seedReport, now: T(2) }).events, []);
  t.deepEqual(types(when(first.after, report(T(3), undefined, { system: { local_ip: '10.0.0.30' } })).events), [
    'current_state.updated',
  ], 'a report without apps derives nothing');
  t.deepEqual(first.after.images, {});
  t.deepEqual(first.after.volumes, {});
  t.deepEqual(first.after.networks, {});
});

test('deriveLifecycle is empty for an unregistered device and for a report without apps', (t) => {
  t.deepEqual(
    deriveLifecycle(initialState(), { apps: { a: { status: 'running' } }, system: {}, resources: {} }, T(1)),
    [],
  );
  t.deepEqual(deriveLifecycle(given(provisioned), { system: { uptime: 5 }, resources: {} }, T(1)), []);
});

test('crashes: non-zero exit, crashed/dead status, and a restart count that went up; a repeated crash report is one crash', (t) => {
  const base = reports(
    given(provisioned),
    report(T(1), { a: { services: { s: svc('Running', { containerId: 'c1', restartCount: 0 }) } } }),
  );
  const exited = when(
    base.after,
    report(T(2), { a: { services: { s: svc('exited', { containerId: 'c1', exitCode: 1, restartCount: 0 }) } } }),
  );
  t.deepEqual(types(exited.events), ['current_state.updated', 'container.crashed']);
  t.like(exited.events[1]!.data, { exit_code: 1, restart_count: 0, container_id: 'c1' });
  t.is(exited.after.containers['a']?.['s']?.status, 'crashed');
  t.deepEqual(
    types(
      when(
        exited.after,
        report(T(3), { a: { services: { s: svc('exited', { containerId: 'c1', exitCode: 1, restartCount: 0 }) } } }, {
          system: { local_ip: '10.0.0.1' },
        }),
      ).events,
    ),
    ['current_state.updated'],
    'the same crash reported again is not a new crash',
  );
  t.deepEqual(
    types(
      when(
        exited.after,
        report(T(3), { a: { services: { s: svc('exited', { containerId: 'c1', exitCode: 1, restartCount: 3 }) } } }),
      ).events,
    ),
    ['current_state.updated', 'container.crashed'],
    'a crash loop: the restart count moved',
  );
  t.deepEqual(
    types(when(base.after, report(T(2), { a: { services: { s: svc('dead', { containerId: 'c1' }) } } })).events),
    ['current_state.updated', 'container.crashed'],
  );
  t.deepEqual(types(when(base.after, report(T(2), { a: { services: { s: svc('crashed') } } })).events), [
    'current_state.updated',
    'container.crashed',
  ]);
  const unseen = when(
    base.after,
    report(T(2), { a: { services: { s: svc('Running', { containerId: 'c1', restartCount: 1 }) } } }),
  );
  t.deepEqual(types(unseen.events), ['current_state.updated', 'container.crashed', 'container.started']);
  t.like(unseen.events[1]!.data, { status: 'restarted', restart_count: 1 });
  t.is(unseen.after.containers['a']?.['s']?.status, 'running');
  t.is(unseen.after.containers['a']?.['s']?.restart_count, 1);
  const recovered = when(
    exited.after,
    report(T(3), { a: { services: { s: svc('Running', { containerId: 'c1', restartCount: 1 }) } } }),
  );
  t.deepEqual(
    types(recovered.events),
    ['current_state.updated', 'container.started'],
    'recovering from a seen crash is a start, not a second crash',
  );
});

test('stops: running → exited 0 or stopped, and a service that leaves the report; the state forgets removed ones', (t) => {
  const base = reports(
    given(provisioned),
    report(T(1), {
      a: { services: { s: svc('running', { containerId: 'c1' }), u: svc('running', { containerId: 'c2' }) } },
    }),
  );
  const stopped = when(
    base.after,
    report(T(2), {
      a: {
        services: { s: svc('exited', { containerId: 'c1', exitCode: 0 }), u: svc('running', { containerId: 'c2' }) },
      },
    }),
  );
  t.deepEqual(types(stopped.events), ['current_state.updated', 'container.stopped']);
  t.is(stopped.after.containers['a']?.['s']?.status, 'stopped');
  t.deepEqual(
    types(
      when(
        stopped.after,
        report(T(3), {
          a: { services: { s: svc('Stopped', { containerId: 'c1' }), u: svc('running', { containerId: 'c2' }) } },
        }),
      ).events,
    ),
    ['current_state.updated'],
    'already stopped',
  );
  const removed = when(base.after, report(T(2), { a: { services: { s: svc('running', { containerId: 'c1' }) } } }));
  t.deepEqual(
    removed.events.slice(1).map((
      e,
    ) => [e.type, (e.data as { status: string }).status, (e.data as { container_id: string }).container_id]),
    [['container.stopped', 'removed', 'c2']],
  );
  t.deepEqual(Object.keys(removed.after.containers['a'] ?? {}), ['s']);
  const appGone = when(base.after, report(T(2), {}));
  t.deepEqual(types(appGone.events), ['current_state.updated', 'container.stopped', 'container.stopped']);
  t.deepEqual(appGone.after.containers, {});
});

test('a new container id while running: the old one stopped (replaced), the new one started', (t) => {
  const base = reports(
    given(provisioned),
    report(T(1), { a: { services: { s: svc('running', { containerId: 'c1', image: 'i:1' }) } } }),
  );
  const { events, after } = when(
    base.after,
    report(T(2), { a: { services: { s: svc('running', { containerId: 'c2', image: 'i:1' }) } } }),
  );
  t.deepEqual(events.slice(1).map((e) => [e.type, (e.data as { container_id: string }).container_id]), [[
    'container.stopped',
    'c1',
  ], ['container.started', 'c2']]);
  t.like(events[1]!.data, { status: 'replaced' });
  t.is(after.containers['a']?.['s']?.container_id, 'c2');
});

test('transitional statuses (downloading, installing) derive no container event', (t) => {
  const base = reports(
    given(provisioned),
    report(T(1), { a: { services: { s: svc('running', { containerId: 'c1' }) } } }),
  );
  for (const status of ['Downloading', 'Installing', 'restarting', 'Handing over']) {
    t.deepEqual(
      types(when(base.after, report(T(2), { a: { services: { s: svc(status, { containerId: 'c1' }) } } })).events),
      ['current_state.updated'],
      status,
    );
  }
});

test('images: download reaching 100% pulls once; running a new image without a seen download pulls; the first image seen does not', (t) => {
  const first = reports(
    given(provisioned),
    report(T(1), { a: { services: { s: svc('running', { containerId: 'c1', image: 'i:1' }) } } }),
  );
  t.deepEqual(types(first.events), ['current_state.updated', 'container.started']);
  t.deepEqual(Object.keys(first.after.images), ['i:1']);
  const downloading = when(
    first.after,
    report(T(2), { a: { services: { s: svc('Downloading', { image: 'i:2', downloadProgress: 50 }) } } }),
  );
  t.deepEqual(types(downloading.events), ['current_state.updated']);
  const done = when(
    downloading.after,
    report(T(3), { a: { services: { s: svc('Downloaded', { image: 'i:2', downloadProgress: 100 }) } } }),
  );
  t.deepEqual(done.events.slice(1), [{
    type: 'image.pulled',
    timestamp: T(3),
    data: { app_id: 'a', service_name: 's', image: 'i:2', previous_image: 'i:1' },
  }]);
  const still = when(
    done.after,
    report(T(4), { a: { services: { s: svc('Downloaded', { image: 'i:2', downloadProgress: 100 }) } } }, {
      system: { local_ip: '10.0.0.1' },
    }),
  );
  t.deepEqual(types(still.events), ['current_state.updated'], '100% again is not a new pull');
  const runs = when(
    done.after,
    report(T(4), { a: { services: { s: svc('running', { containerId: 'c2', image: 'i:2' }) } } }),
  );
  t.deepEqual(
    types(runs.events),
    ['current_state.updated', 'container.stopped', 'container.started'],
    'already pulled: no second image.pulled',
  );
  t.deepEqual(Object.keys(runs.after.images), ['i:2'], 'an image no reported service uses is forgotten');
  const direct = when(
    first.after,
    report(T(2), { a: { services: { s: svc('running', { containerId: 'c3', image: 'i:3' }) } } }),
  );
  t.deepEqual(types(direct.events), [
    'current_state.updated',
    'image.pulled',
    'container.stopped',
    'container.started',
  ]);
});

test('image.pull_failed once per new error, not again while the report repeats it', (t) => {
  const base = reports(
    given(provisioned),
    report(T(1), { a: { services: { s: svc('running', { containerId: 'c1', image: 'i:1' }) } } }),
  );
  const failing = (minute: number, error: string, cpu = 0) =>
    report(T(minute), { a: { services: { s: svc('Downloading', { image: 'i:2', imagePullError: error }) } } }, {
      system: { local_ip: `10.0.0.${cpu}` },
    });
  const failed = when(base.after, failing(2, 'manifest unknown'));
  t.deepEqual(failed.events.slice(1), [{
    type: 'image.pull_failed',
    timestamp: T(2),
    data: { app_id: 'a', service_name: 's', image: 'i:2', error: 'manifest unknown' },
  }]);
  t.deepEqual(types(when(failed.after, failing(3, 'manifest unknown', 1)).events), ['current_state.updated']);
  t.deepEqual(types(when(failed.after, failing(3, 'toomanyrequests')).events), [
    'current_state.updated',
    'image.pull_failed',
  ]);
});

test('volumes and networks: set differences per app, only where the report carries the field', (t) => {
  const base = reports(
    given(provisioned),
    report(T(1), { a: { status: 'running', volumes: ['v1', 'v2'], networks: ['n1'] } }),
  );
  t.deepEqual(types(base.events), [
    'current_state.updated',
    'network.created',
    'volume.created',
    'volume.created',
    'container.started',
  ]);
  t.deepEqual(base.after.volumes, { a: ['v1', 'v2'] });
  const changed = when(base.after, report(T(2), { a: { status: 'running', volumes: ['v2', 'v3'], networks: [] } }));
  t.deepEqual(changed.events.slice(1).map((e) => `${e.type}:${(e.data as { name: string }).name}`), [
    'volume.created:v3',
    'volume.removed:v1',
    'network.removed:n1',
  ]);
  t.deepEqual(changed.after.volumes, { a: ['v2', 'v3'] });
  t.deepEqual(changed.after.networks, {});
  t.deepEqual(
    types(when(changed.after, report(T(3), { a: { status: 'running' } })).events),
    ['current_state.updated'],
    'no volumes field: nothing derived',
  );
});

const target = (version: number, image: string): DeviceEvent => ({
  type: 'target_state.updated',
  timestamp: T(version),
  data: {
    version,
    new_state: { apps: { a: { services: [{ serviceName: 's', image }] } }, config: {} },
    old_state: null,
    apps_added: [],
    apps_removed: [],
    apps_count: 1,
  },
});
const running = (now: string, image: string) =>
  report(now, { a: { services: { s: svc('running', { containerId: image, image }) } } });

test('reconciliation: a target update that leaves the device out of sync starts one; the first report in sync completes it with its duration', (t) => {
  const started = when(given(provisioned), {
    type: 'set_target_state',
    now: T(1),
    target: { apps: { a: { services: [{ serviceName: 's', image: 'i:1' }] } }, config: {} },
  });
  t.deepEqual(types(started.events), ['target_state.updated', 'reconciliation.started']);
  t.deepEqual(started.events[1]!.data, {
    target_version: 1,
    apps_missing: ['a'],
    apps_extra: [],
    services: [],
    config_differs: [],
  });
  t.deepEqual(started.after.reconciliation, { status: 'open', target_version: 1, started_at: T(1) });
  const notYet = when(started.after, report(T(2), { a: { services: { s: svc('Downloading', { image: 'i:1' }) } } }));
  t.deepEqual(types(notYet.events), ['current_state.updated']);
  const done = when(notYet.after, running(T(4, 30), 'i:1'));
  t.deepEqual(done.events.at(-1), {
    type: 'reconciliation.completed',
    timestamp: T(4, 30),
    data: { target_version: 1, started_at: T(1), duration_ms: 210_000 },
  });
  t.like(done.after.reconciliation, { status: 'completed', duration_ms: 210_000 });
  t.deepEqual(types(when(done.after, report(T(5), undefined, { system: { local_ip: '10.0.0.2' } })).events), [
    'current_state.updated',
  ], 'completed once');
});

test('reconciliation: a target the device already runs starts none', (t) => {
  const device = reports(given(provisioned), running(T(1), 'i:1')).after;
  t.deepEqual(
    types(
      when(device, {
        type: 'set_target_state',
        now: T(2),
        target: { apps: { a: { services: [{ serviceName: 's', image: 'i:1' }] } }, config: {} },
      }).events,
    ),
    ['target_state.updated'],
  );
});

test('reconciliation: failed, rejected or aborted update_status fails it; other statuses do not', (t) => {
  const open = when(given(provisioned, target(1, 'i:1')), {
    type: 'set_target_state',
    now: T(2),
    target: { apps: { a: { services: [{ serviceName: 's', image: 'i:2' }] } }, config: {} },
  }).after;
  for (const status of ['failed', 'Rejected', 'ABORTED']) {
    const { events, after } = when(open, report(T(3), undefined, { update_status: status }));
    t.deepEqual(types(events), ['current_state.updated', 'reconciliation.failed'], status);
    t.like(events[1]!.data, {
      target_version: 2,
      reason: `update_${status.toLowerCase()}`,
      update_status: status,
      duration_ms: 60_000,
    });
    t.like(after.reconciliation, { status: 'failed', reason: `update_${status.toLowerCase()}` });
  }
  t.deepEqual(types(when(open, report(T(3), undefined, { update_status: 'downloading' })).events), [
    'current_state.updated',
  ]);
});

test('reconciliation: a newer target supersedes the open one before starting its own', (t) => {
  const open =
    when(given(provisioned), { type: 'set_target_state', now: T(1), target: { apps: { a: {} }, config: {} } }).after;
  const { events, after } = when(open, {
    type: 'set_target_state',
    now: T(3),
    target: { apps: { b: {} }, config: {} },
  });
  t.deepEqual(types(events), ['target_state.updated', 'reconciliation.failed', 'reconciliation.started']);
  t.deepEqual(events[1]!.data, {
    target_version: 1,
    started_at: T(1),
    duration_ms: 120_000,
    reason: 'superseded',
    superseded_by: 2,
  });
  t.like(after.reconciliation, { status: 'open', target_version: 2 });
  t.deepEqual(causationIndexes(events), [null, 0, 0]);
});

test('reconciliation: expires only once it is at least the timeout old, and only while open', (t) => {
  const open =
    when(given(provisioned), { type: 'set_target_state', now: T(0), target: { apps: { a: {} }, config: {} } }).after;
  t.deepEqual(decide({ type: 'expire_reconciliation', now: T(29, 59), timeout_ms: 30 * 60_000 }, open), []);
  const { events, after } = when(open, { type: 'expire_reconciliation', now: T(30), timeout_ms: 30 * 60_000 });
  t.deepEqual(events, [{
    type: 'reconciliation.failed',
    timestamp: T(30),
    data: { target_version: 1, started_at: T(0), duration_ms: 1_800_000, reason: 'timeout', timeout_ms: 1_800_000 },
  }]);
  t.deepEqual(
    decide({ type: 'expire_reconciliation', now: T(40), timeout_ms: 30 * 60_000 }, after),
    [],
    'already closed',
  );
  t.deepEqual(types(when(after, report(T(41), { a: { status: 'running' } })).events), [
    'current_state.updated',
    'container.started',
  ], 'converging after the failure completes nothing');
  t.deepEqual(decide({ type: 'expire_reconciliation', now: T(30), timeout_ms: 1 }, initialState()), []);
});

test('connectivity: lost once after the timeout (never when disabled), restored by the next call with the whole silence', (t) => {
  const device = given(provisioned);
  const lose = (state: DeviceState, now: string) =>
    decide({ type: 'mark_connection_lost', now, last_contact_at: T(1), timeout_ms: 15 * 60_000 }, state);
  t.deepEqual(lose(device, T(15, 59)), []);
  const lost = when(device, {
    type: 'mark_connection_lost',
    now: T(16),
    last_contact_at: T(1),
    timeout_ms: 15 * 60_000,
  });
  t.deepEqual(lost.events, [{
    type: 'device.connection_lost',
    timestamp: T(16),
    data: { last_seen_at: T(1), silent_ms: 900_000, timeout_ms: 900_000 },
  }]);
  t.deepEqual(lost.after.connectivity, { status: 'lost', since: T(16), last_seen_at: T(1) });
  t.deepEqual(lose(lost.after, T(30)), [], 'once per transition');
  const offline: DeviceEvent = {
    type: 'device.offline',
    timestamp: T(2),
    data: {
      device_name: 'd1',
      device_type: 'rpi4',
      previous_state: 'active',
      new_state: 'inactive',
      reason: null,
      changed_at: T(2),
    },
  };
  t.deepEqual(lose(given(provisioned, offline), T(30)), [], 'a disabled device is not reported lost');
  const restored = when(lost.after, { type: 'record_contact', now: T(31) });
  t.deepEqual(restored.events, [{
    type: 'device.connection_restored',
    timestamp: T(31),
    data: { last_seen_at: T(1), lost_at: T(16), silent_ms: 1_800_000 },
  }]);
  t.deepEqual(restored.after.connectivity, { status: 'online', since: T(31) });
  t.deepEqual(decide({ type: 'record_contact', now: T(32) }, restored.after), []);
  t.deepEqual(decide({ type: 'record_contact', now: T(32) }, device), [], "a connected device's contact is no event");
  const viaReport = when(lost.after, report(T(31), undefined, { system: { local_ip: '10.0.0.3' } }));
  t.deepEqual(types(viaReport.events), ['device.connection_restored', 'current_state.updated']);
  const reportedThenLost = reports(given(provisioned), report(T(1), undefined, { system: { local_ip: '10.0.0.3' } }), {
    type: 'mark_connection_lost',
    now: T(16),
    last_contact_at: T(1),
    timeout_ms: 15 * 60_000,
  }).after;
  t.deepEqual(types(when(reportedThenLost, report(T(31), undefined, { system: { local_ip: '10.0.0.3' } })).events), [
    'device.connection_restored',
  ], 'an unchanged report still restores');
});

test("device-reported events: stored at the decision's time, with the device's own instant as observed_at; refused when disabled", (t) => {
  const device = given(provisioned);
  const { events, after } = when(device, {
    type: 'record_device_events',
    now: T(5),
    events: [
      {
        type: 'container.crashed',
        data: {
          app_id: 'a',
          service_name: 's',
          container_id: 'c1',
          image: null,
          status: 'exited',
          exit_code: 2,
          restart_count: 4,
        },
        observed_at: T(4, 58),
      },
      { type: 'volume.created', data: { app_id: 'a', name: 'v' } },
    ],
  });
  t.deepEqual(events, [
    {
      type: 'container.crashed',
      timestamp: T(5),
      data: {
        app_id: 'a',
        service_name: 's',
        container_id: 'c1',
        image: null,
        status: 'exited',
        exit_code: 2,
        restart_count: 4,
        observed_at: T(4, 58),
      },
    },
    { type: 'volume.created', timestamp: T(5), data: { app_id: 'a', name: 'v' } },
  ]);
  t.like(after.containers['a']?.['s'], { status: 'crashed', restart_count: 4, exit_code: 2 });
  t.deepEqual(after.volumes, { a: ['v'] });
  t.deepEqual(causationIndexes(events), [null, null], 'what a device says is not derived');
  const offline = when(device, { type: 'set_active', now: T(6), is_active: false }).after;
  const error = t.throws(
    () =>
      decide({
        type: 'record_device_events',
        now: T(7),
        events: [{ type: 'volume.created', data: { app_id: 'a', name: 'v' } }],
      }, offline),
    { instanceOf: DomainError },
  );
  t.is(error?.code, 'device_inactive');
});

test('causation: derived events point at the nearest report or target update of their decision', (t) => {
  const lost =
    when(given(provisioned), { type: 'mark_connection_lost', now: T(20), last_contact_at: T(0), timeout_ms: 60_000 })
      .after;
  const { events } = when(lost, report(T(21), { a: { status: 'running', volumes: ['v'] } }));
  t.deepEqual(types(events), [
    'device.connection_restored',
    'current_state.updated',
    'volume.created',
    'container.started',
  ]);
  t.deepEqual(causationIndexes(events), [null, null, 1, 1]);
});

test('evolve: lifecycle events change no drift and keep drift_since', (t) => {
  const drifting = given(provisioned, target(1, 'i:1'));
  const after = fold([{
    type: 'container.started',
    timestamp: T(9),
    data: {
      app_id: 'a',
      service_name: 's',
      container_id: 'c',
      image: 'i:1',
      status: 'running',
      exit_code: null,
      restart_count: 0,
    },
  }], drifting) as RegisteredDevice;
  t.deepEqual(after.drift, drifting.drift);
  t.is(after.drift_since, drifting.drift_since);
  t.is(after.updated_at, T(9));
  t.is(after.version, drifting.version + 1);
});

// hardening issue, finding 9: app ids that are also Object.prototype's property names
for (const appId of ['constructor', 'valueOf', 'toString', 'hasOwnProperty']) {
  test(`app id "${appId}" with volumes, networks and services folds like any other app id`, (t) => {
    const device = given(provisioned);
    const first = when(
      device,
      report(T(1), {
        [appId]: {
          status: 'running',
          volumes: ['data'],
          networks: ['net'],
          services: { main: { status: 'running', containerId: 'c1', image: 'img:1' } },
        },
      }),
    );
    const types = first.events.map((e) => e.type);
    t.true(types.includes('volume.created'), types.join(','));
    t.true(types.includes('network.created'));
    t.true(types.includes('container.started'));
    t.deepEqual(first.after.volumes[appId], ['data']);
    // the device can report again: the same app, then without its volume and network
    const second = when(first.after, report(T(2), { [appId]: { status: 'running', volumes: [], networks: [] } }));
    t.deepEqual(second.events.map((e) => e.type).filter((type) => type.endsWith('.removed')).sort(), [
      'network.removed',
      'volume.removed',
    ]);
    t.false(Object.hasOwn(second.after.volumes, appId));
  });
}
