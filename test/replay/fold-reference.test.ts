// The optimised fold means exactly what the straightforward one meant: `evolve` is compared,
// event by event, with the fold as it was before the replay speed-up (reference-fold.ts), on
// arbitrary event sequences (every event type, odd shapes the API would refuse to write) and
// on long histories made by the domain's `decide`.
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import { type DeviceState, initialState } from '../../domain/device/state.ts';
import { generateHistory } from '../../bench/generate-history.ts';
import { REFERENCE_FOLD_VERSION, referenceEvolve } from './reference-fold.ts';

const roundTrip = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/**
 * Folds `events` with both folds from `from`, comparing after every event: the same value in
 * memory (`undefined` members and -0 included) and the same JSON text (key order included).
 * `resumeEvery`: every so many events both continue from the state's JSON round trip, as
 * replay does from a snapshot; from there only the JSON text is compared, because a drift
 * kept from a round-tripped state lacks the `undefined` members a recomputed one has.
 * `inMemory: false` compares the JSON text only (objects whose prototype a "__proto__" key
 * replaced are never deep-equal: each fold made its own).
 */
function compareFolds(
  events: readonly DeviceEvent[],
  resumeEvery = 0,
  fold: typeof evolve = evolve,
  inMemory = true,
): string | null {
  let optimised: DeviceState = initialState();
  let reference: DeviceState = initialState();
  let resumed = false;
  for (const [i, event] of events.entries()) {
    if (resumeEvery > 0 && i > 0 && i % resumeEvery === 0) {
      optimised = roundTrip(reference);
      reference = roundTrip(reference);
      resumed = true;
    }
    const outcome = [fold, referenceEvolve].map((f, j) => {
      try {
        return { state: f(j === 0 ? optimised : reference, event) };
      } catch (error) {
        return { error: String(error) };
      }
    });
    const [mine, theirs] = outcome as [
      { state?: DeviceState; error?: string },
      { state?: DeviceState; error?: string },
    ];
    // an app id like "__proto__" makes both folds throw (left as it was); the same error is the same meaning
    if (mine.error !== undefined || theirs.error !== undefined) {
      return mine.error === theirs.error
        ? null
        : `event ${i + 1} (${event.type}): ${mine.error ?? 'no error'} vs ${theirs.error ?? 'no error'}`;
    }
    optimised = mine.state!;
    reference = theirs.state!;
    const json = JSON.stringify(optimised);
    const expected = JSON.stringify(reference);
    if (json !== expected) {
      return `event ${i + 1} (${event.type}): JSON differs\n  optimised ${json}\n  reference ${expected}`;
    }
    if (inMemory && !resumed && !isDeepStrictEqual(optimised, reference)) {
      return `event ${i + 1} (${event.type}): values differ (same JSON)`;
    }
  }
  return null;
}

/**
 * A report repeating an earlier one's apps and config: the same JSON as a new object (as read
 * from the database), or with the keys in another order (not the same JSON).
 */
function repeats(bodies: Omit<DeviceEvent, 'timestamp'>[], picks: number[]): Omit<DeviceEvent, 'timestamp'>[] {
  const reports = bodies.filter((b) => b.type === 'current_state.updated');
  return bodies.map((body, i) => {
    const pick = picks[i % picks.length]!;
    if (body.type !== 'current_state.updated' || reports.length === 0 || pick % 3 === 0) return body;
    const earlier = reports[pick % reports.length]! as DeviceEvent & { type: 'current_state.updated' };
    const reorder = pick % 5 === 0;
    const copy = <T>(
      v: T,
    ): T => (reorder && v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).reverse()) as T
      : roundTrip(v));
    const data = { ...body.data as object } as (DeviceEvent & { type: 'current_state.updated' })['data'];
    if (earlier.data.apps !== undefined) data.apps = copy(earlier.data.apps);
    if (earlier.data.config !== undefined) data.config = copy(earlier.data.config);
    return { ...body, data } as Omit<DeviceEvent, 'timestamp'>;
  });
}

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const withoutUndefined = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
const provisioned = {
  type: 'device.provisioned',
  data: {
    device_name: 'd',
    device_type: 't',
    fleet_id: 'f',
    ip_address: null,
    mac_address: null,
    os_version: null,
    supervisor_version: null,
    provisioning_key_id: 'k',
  },
} as Omit<DeviceEvent, 'timestamp'>;

/** Device histories of arbitrary events; small pools, so that ids, names and images collide often. */
function histories(appIds: readonly string[]): fc.Arbitrary<DeviceEvent[]> {
  const appId = fc.constantFrom(...appIds);
  const serviceName = fc.constantFrom('main', 'sidecar', 'web', '1000');
  const image = fc.constantFrom('img:a', 'img:b', 'img:c');
  const status = fc.constantFrom('Running', 'running', 'Exited', 'Downloading', 'dead');
  const reportedService = fc.record({
    status: optional(status),
    image: optional(image),
    containerId: optional(fc.constantFrom('c1', 'c2')),
    exitCode: optional(fc.constantFrom(0, -0, 1, 137)),
    restartCount: optional(fc.nat(3)),
    downloadProgress: optional(fc.nat(100)),
  }).map(withoutUndefined);
  const reportedApp = fc.oneof(
    // the seed's shape: the app is one service named after it
    fc.record({
      status: optional(status),
      image: optional(image),
      containerId: optional(fc.constantFrom('c1', 'c2')),
      releaseId: optional(fc.constantFrom(1, 2, '2')),
    }).map(withoutUndefined),
    fc.record({
      services: fc.dictionary(serviceName, reportedService, { maxKeys: 3 }),
      commit: optional(fc.constantFrom('abc', 'def')),
    }).map(withoutUndefined),
  );
  const reportedApps = fc.dictionary(appId, reportedApp, { maxKeys: 3 });
  const config = fc.dictionary(
    fc.constantFrom('LOG_LEVEL', 'MODE'),
    fc.constantFrom<unknown>('info', 'debug', 1, [1, 2], { a: 1 }),
    { maxKeys: 2 },
  );
  const targetApp = fc.record({
    appName: optional(fc.constantFrom('app-a', 'app-b')),
    releaseId: optional(fc.constantFrom(1, 2, '2')),
    commit: optional(fc.constantFrom('abc', 'def')),
    services: optional(
      fc.array(fc.record({ serviceName, image: optional(image) }).map(withoutUndefined), { maxLength: 3 }),
    ),
  }).map(withoutUndefined);
  const containerData = fc.record({
    app_id: appId,
    service_name: serviceName,
    container_id: fc.option(fc.constantFrom('c1', 'c2')),
    image: fc.option(image),
    status: fc.option(fc.constantFrom('Running', 'Exited', 'removed', 'replaced')),
    exit_code: fc.option(fc.constantFrom(0, 1, 137)),
    restart_count: fc.option(fc.nat(3)),
  });
  const appResource = fc.record({ app_id: appId, name: fc.constantFrom('data', 'logs', 'net') });
  const reasons = fc.constantFrom(
    'timeout',
    'superseded',
    'update_failed',
    'update_rejected',
    'update_aborted',
  ) as fc.Arbitrary<'timeout'>;

  /** Event bodies of every type (timestamps are added in order afterwards). */
  const eventBody: fc.Arbitrary<Omit<DeviceEvent, 'timestamp'>> = fc.oneof(
    { weight: 1, arbitrary: fc.constant(provisioned) },
    {
      weight: 3,
      arbitrary: fc.record({ apps: fc.dictionary(appId, targetApp, { maxKeys: 3 }), config }).map((s) => ({
        type: 'target_state.updated',
        data: {
          version: 1,
          new_state: s,
          old_state: null,
          apps_added: [],
          apps_removed: [],
          apps_count: Object.keys(s.apps).length,
        },
      })),
    },
    {
      weight: 10,
      arbitrary: fc.record({
        apps: optional(reportedApps),
        system: fc.dictionary(
          fc.constantFrom('uptime', 'hostname'),
          fc.constantFrom<string | number | null>(1, 2, 'h', null),
          { maxKeys: 2 },
        ),
        resources: fc.dictionary(
          fc.constantFrom('cpu_usage', 'memory_usage'),
          fc.constantFrom<number | null>(0, -0, 12.5, null),
          { maxKeys: 2 },
        ),
        config: optional(config),
        update_status: optional(fc.constantFrom('done', 'failed')),
      }).map((d) => ({
        type: 'current_state.updated',
        data: { ...withoutUndefined(d), apps_count: Object.keys(d.apps ?? {}).length },
      })),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom('device.online', 'device.offline').map((type) => ({
        type,
        data: {
          device_name: 'd',
          device_type: 't',
          previous_state: 'active',
          new_state: 'inactive',
          reason: null,
          changed_at: '2026-01-01T00:00:00.000Z',
        },
      })),
    },
    {
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom('container.started', 'container.stopped', 'container.crashed'), containerData)
        .map(([type, data]) => ({ type, data })),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        app_id: appId,
        service_name: serviceName,
        image: fc.option(image),
        previous_image: fc.option(image),
      }).map((data) => ({ type: 'image.pulled', data })),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        app_id: appId,
        service_name: serviceName,
        image: fc.option(image),
        error: fc.constant('x'),
      }).map((data) => ({ type: 'image.pull_failed', data })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(
        fc.constantFrom('volume.created', 'volume.removed', 'network.created', 'network.removed'),
        appResource,
      ).map(([type, data]) => ({ type, data })),
    },
    {
      weight: 1,
      arbitrary: fc.constant({
        type: 'reconciliation.started',
        data: { target_version: 1, apps_missing: [], apps_extra: [], services: [], config_differs: [] },
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constant({
        type: 'reconciliation.completed',
        data: { target_version: 1, started_at: '2026-01-01T00:00:00.000Z', duration_ms: 5 },
      }),
    },
    {
      weight: 1,
      arbitrary: reasons.map((reason) => ({
        type: 'reconciliation.failed',
        data: { target_version: 1, started_at: '2026-01-01T00:00:00.000Z', duration_ms: 5, reason },
      })),
    },
    {
      weight: 1,
      arbitrary: fc.constant({
        type: 'device.connection_lost',
        data: { last_seen_at: '2026-01-01T00:00:00.000Z', silent_ms: 5, timeout_ms: 5 },
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constant({
        type: 'device.connection_restored',
        data: { last_seen_at: '2026-01-01T00:00:00.000Z', lost_at: '2026-01-01T00:00:00.000Z', silent_ms: 5 },
      }),
    },
  ) as fc.Arbitrary<Omit<DeviceEvent, 'timestamp'>>;

  return fc.tuple(
    fc.array(eventBody, { minLength: 1, maxLength: 80 }),
    fc.array(fc.nat(1_000), { minLength: 1, maxLength: 20 }),
    fc.array(fc.constantFrom(0, 0, 1_000, 60_000), { minLength: 1, maxLength: 10 }),
    fc.boolean(),
  ).map(([bodies, picks, gaps, provisionFirst]) => {
    let t = Date.parse('2026-01-01T00:00:00.000Z');
    const withFirst = provisionFirst ? [provisioned, ...bodies] : bodies;
    return repeats(withFirst, picks).map((body, i) => {
      t += gaps[i % gaps.length]!;
      return { ...body, timestamp: new Date(t).toISOString() } as DeviceEvent;
    });
  });
}

const history = histories(['1000', '2000', 'web']);

test('the reference is of the fold version it claims: a change of meaning must bump both', (t) => {
  t.is(FOLD_VERSION, REFERENCE_FOLD_VERSION);
});

test('property: on arbitrary event sequences, evolve equals the reference fold after every event', (t) => {
  let last: string | null = null;
  const run = fc.check(fc.property(history, (events) => (last = compareFolds(events)) === null), {
    numRuns: 3_000,
    seed: 20261128,
  });
  t.false(run.failed, `${last}\n${JSON.stringify(run.counterexample)}`);
});

test("property: resumed from JSON round trips (as from snapshots), evolve gives the reference fold's JSON", (t) => {
  let last: string | null = null;
  const run = fc.check(
    fc.property(
      history,
      fc.integer({ min: 1, max: 7 }),
      (events, every) => (last = compareFolds(events, every)) === null,
    ),
    { numRuns: 2_000, seed: 20261129 },
  );
  t.false(run.failed, `${last}\n${JSON.stringify(run.counterexample)}`);
});

test('property: app ids like "__proto__" (which zod strips before anything is stored) give the reference fold\'s JSON, or its error', (t) => {
  let last: string | null = null;
  const run = fc.check(
    fc.property(histories(['1000', '__proto__']), (events) => (last = compareFolds(events, 0, evolve, false)) === null),
    { numRuns: 2_000, seed: 20261130 },
  );
  t.false(run.failed, `${last}\n${JSON.stringify(run.counterexample)}`);
});

test("histories made by decide (the benchmark's kind, backwards timestamps included): evolve equals the reference after every event", (t) => {
  for (const seed of [1, 2, 3, 4]) {
    const events = generateHistory({
      uuid: `f01d0000-0000-4000-8000-00000000000${seed}`,
      count: 5_000,
      start: '2026-01-01T00:00:00.000Z',
      spanMs: 10 * 86_400_000,
      seed,
      outOfOrder: seed % 2 === 0 ? 0.05 : 0,
      jitterMs: 30 * 60_000,
    });
    t.is(compareFolds(events), null, `seed ${seed}`);
    t.is(compareFolds(events, 500), null, `seed ${seed}, resumed every 500 events`);
  }
});

test('the comparison can fail: a fold that keeps the drift on a report, or reorders reported apps, is caught', (t) => {
  const keepsDrift: typeof evolve = (state, event) => {
    const next = evolve(state, event);
    return event.type === 'current_state.updated' && state.status === 'registered' && next.status === 'registered'
      ? { ...next, drift: state.drift }
      : next;
  };
  const reorders: typeof evolve = (state, event) => {
    const next = evolve(state, event);
    if (next.status !== 'registered' || next.current === null) return next;
    return {
      ...next,
      current: { ...next.current, apps: Object.fromEntries(Object.entries(next.current.apps).reverse()) },
    };
  };
  for (const [name, broken] of [['keeps drift', keepsDrift], ['reorders apps', reorders]] as const) {
    const found = fc.check(fc.property(history, (events) => compareFolds(events, 0, broken) === null), {
      numRuns: 3_000,
      seed: 20261128,
    });
    t.true(found.failed, `${name}: no counterexample found`);
  }
});
