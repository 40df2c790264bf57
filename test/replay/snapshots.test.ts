// Snapshots: written every N events off the request path, ignored when of another fold
// version or tampered with, never changing an answer; reads prune partitions.
import test from 'ava';
import fc from 'fast-check';
import { sql } from 'slonik';
import { z } from 'zod';
import { jsonEqual } from '../../domain/device/drift.ts';
import { FOLD_VERSION } from '../../domain/device/evolve.ts';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { jsonDiff } from '../../domain/replay/diff.ts';
import { replayAt } from '../../domain/replay/history.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { createSnapshotter } from '../../infra/replay/snapshotter.ts';
import { createSnapshotStore } from '../../infra/event-store/snapshots.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { appendAsBefore011, appendHistory, generateHistory } from '../../bench/generate-history.ts';

const EVERY = 40;
const DEVICE = '5a9b0000-0000-4000-8000-000000000001';
const START = '2026-02-01T00:00:00.000Z';
const DAY = 86_400_000;

let db: TestDatabase;
let rows: StoredEvent[] = [];
const normalise = (v: unknown) => JSON.parse(JSON.stringify(v));

test.before(async () => {
  db = await createTestDatabase();
  const store = createEventStore(db.pool);
  const events = generateHistory({
    uuid: DEVICE,
    count: 700,
    start: START,
    spanMs: 10 * DAY,
    seed: 7,
    outOfOrder: 0.15,
    jitterMs: 40 * 60_000,
  });
  // a log written before migration 011: some events stamped before the version before them
  await appendAsBefore011(db.pool, store, DEVICE, events, 300);
  rows = [];
  for await (const row of createReplayQueries(db.pool).exportEvents(DEVICE, {})) rows.push(row);
  await createSnapshotter(db.pool, { every: EVERY }).runOnce();
});

test.after.always(async () => {
  await db?.drop();
});

test('the generated history has events whose timestamps go backwards (the property covers them)', (t) => {
  const backwards = rows.filter((r, i) => i > 0 && Date.parse(r.timestamp) < Date.parse(rows[i - 1]!.timestamp));
  t.true(rows.length >= 700);
  t.true(backwards.length > 5, `${backwards.length} out-of-order events`);
});

test('the snapshotter writes one snapshot at every multiple of N, and a second pass writes none', async (t) => {
  const store = createSnapshotStore(db.pool);
  const versions = (await store.list('device', DEVICE, FOLD_VERSION)).map((s) => s.version);
  const expected = Array.from({ length: Math.floor(rows.length / EVERY) }, (_, i) => (i + 1) * EVERY);
  t.deepEqual(versions, expected);
  const pass = await createSnapshotter(db.pool, { every: EVERY }).runOnce();
  t.is(pass.snapshots, 0);
  // each snapshot is exactly the fold of events 1..version
  const snap = await store.latest('device', DEVICE, FOLD_VERSION);
  t.truthy(snap);
  const upTo = rows.filter((r) => r.aggregate_version <= snap!.version);
  const maxTime = upTo.reduce(
    (m, r) => (Date.parse(r.timestamp) > Date.parse(m) ? r.timestamp : m),
    upTo[0]!.timestamp,
  );
  t.is(snap!.last_event_at, maxTime);
  t.is(snap!.last_event_hash, upTo[upTo.length - 1]!.hash);
  t.deepEqual(normalise(snap!.state), normalise(replayAt(upTo, maxTime)));
});

test('property: for 1,000 random instants, state with snapshots equals state without snapshots', async (t) => {
  const withSnapshots = createReplayQueries(db.pool);
  const withoutSnapshots = createReplayQueries(db.pool, { snapshots: false });
  const first = Date.parse(rows[0]!.timestamp);
  const last = Math.max(...rows.map((r) => Date.parse(r.timestamp)));
  const snapshotTimes = (await createSnapshotStore(db.pool).list('device', DEVICE, FOLD_VERSION)).map((s) =>
    Date.parse(s.last_event_at)
  );
  const instant = fc.oneof(
    fc.integer({ min: first - 3_600_000, max: last + 3_600_000 }),
    fc.constantFrom(...rows.map((r) => Date.parse(r.timestamp))),
    fc.constantFrom(...snapshotTimes).chain((s) => fc.integer({ min: s - 2, max: s + 2 })),
  );
  let runs = 0;
  let fromSnapshot = 0;
  await fc.assert(
    fc.asyncProperty(instant, async (ms) => {
      const at = new Date(ms).toISOString();
      const fast = await withSnapshots.stateAt(DEVICE, at);
      // "without snapshots", by definition: every event with timestamp <= at, folded from the initial state
      const reference = replayAt(rows, at);
      if (fast.snapshot_version !== null) fromSnapshot += 1;
      const same = jsonEqual(normalise(fast.state), normalise(reference));
      let slowSame = true;
      if (runs % 5 === 0) {
        const slow = await withoutSnapshots.stateAt(DEVICE, at);
        slowSame = slow.snapshot_version === null && jsonEqual(normalise(slow.state), normalise(reference));
      }
      runs += 1;
      if (!same || !slowSame || fast.events_folded !== reference.version) {
        t.log(
          at,
          fast.snapshot_version,
          fast.events_folded,
          reference.version,
          JSON.stringify(jsonDiff(normalise(reference), normalise(fast.state))).slice(0, 1500),
        );
      }
      return same && slowSame && fast.events_folded === reference.version;
    }),
    { numRuns: 1000, seed: 20260302 },
  );
  t.is(runs, 1000);
  t.true(fromSnapshot > 500, `${fromSnapshot} of 1000 instants started from a snapshot`);
});

test('snapshots of another fold version are ignored', async (t) => {
  const store = createSnapshotStore(db.pool);
  const real = (await store.latest('device', DEVICE, FOLD_VERSION))!;
  const bogus = { ...(real.state as Record<string, unknown>), device_name: 'WRONG FOLD' };
  for (const foldVersion of [FOLD_VERSION - 1, FOLD_VERSION + 1]) {
    await store.write([{ ...real, fold_version: foldVersion, version: real.version + 1, state: bogus }]);
  }
  const at = new Date(Date.parse(rows[rows.length - 1]!.timestamp) + 60_000).toISOString();
  const result = await createReplayQueries(db.pool).stateAt(DEVICE, at);
  t.is(result.snapshot_version, real.version);
  t.not((result.state as { device_name?: string }).device_name, 'WRONG FOLD');
  t.deepEqual(normalise(result.state), normalise(replayAt(rows, at)));
});

test('a snapshot that no longer matches its hash is skipped for the next older one', async (t) => {
  const store = createSnapshotStore(db.pool);
  const versions = (await store.list('device', DEVICE, FOLD_VERSION)).map((s) => s.version);
  const target = versions[3]!;
  const snapshot = (await store.list('device', DEVICE, FOLD_VERSION)).find((s) => s.version === target)!;
  await db.pool.query(sql.unsafe`
    UPDATE snapshots SET state = jsonb_set(state, '{is_active}', to_jsonb(NOT (state->>'is_active')::boolean))
     WHERE aggregate_id = ${DEVICE} AND fold_version = ${FOLD_VERSION} AND version = ${target}`);
  const at = new Date(Date.parse(snapshot.last_event_at) + 1).toISOString();
  const result = await createReplayQueries(db.pool).stateAt(DEVICE, at);
  t.true(result.snapshot_version === null || result.snapshot_version < target);
  t.deepEqual(normalise(result.state), normalise(replayAt(rows, at)));
});

const planPartitions = (plan: string) => [...new Set([...plan.matchAll(/events_(\d{8})/g)].map((m) => m[1]!))].sort();

test('EXPLAIN: a read after a snapshot touches only the partitions between the snapshot and T', async (t) => {
  const queries = createReplayQueries(db.pool);
  const all = [...new Set(rows.map((r) => r.timestamp.slice(0, 10).replace(/-/g, '')))];
  const at = new Date((Date.parse(rows[0]!.timestamp) + Date.parse(rows[rows.length - 1]!.timestamp)) * 0.5 + 0.2 * DAY)
    .toISOString();
  const snapshot = (await createSnapshotStore(db.pool).latest('device', DEVICE, FOLD_VERSION, at))!;
  const plan = await queries.explainStateAt(DEVICE, at);
  const read = planPartitions(plan);
  t.log(plan);
  const lowest = new Date(Date.parse(snapshot.last_event_at) - 3_600_000).toISOString().slice(0, 10).replace(/-/g, '');
  const highest = at.slice(0, 10).replace(/-/g, '');
  t.true(all.length >= 6, `${all.length} partitions hold the device's events`);
  t.true(read.length < all.length - 3);
  t.true(read.length >= 1 && read.length <= 2, `read ${read.join(', ')}`);
  t.true(
    read.every((day) => day >= lowest && day <= highest),
    `read ${read.join(', ')}, allowed ${lowest}..${highest}`,
  );
});

test('EXPLAIN: before the first snapshot, the registration instant bounds the scan', async (t) => {
  const queries = createReplayQueries(db.pool, { snapshots: false });
  const at = new Date(Date.parse(START) + 1.5 * DAY).toISOString();
  const read = planPartitions(await queries.explainStateAt(DEVICE, at));
  t.deepEqual(read, ['20260131', '20260201', '20260202'].filter((d) => read.includes(d)));
  t.true(read.includes('20260202') && !read.some((d) => d > '20260202'), `read ${read.join(', ')}`);
});

test("fleet at an instant equals each device's own state at that instant", async (t) => {
  const fleetDb = await createTestDatabase();
  t.teardown(() => fleetDb.drop());
  const store = createEventStore(fleetDb.pool);
  const histories: Record<string, StoredEvent[]> = {};
  for (let i = 0; i < 6; i += 1) {
    const uuid = `5a9b0000-0000-4000-8000-00000000010${i}`;
    await appendHistory(
      fleetDb.pool,
      store,
      uuid,
      generateHistory({
        uuid,
        count: 60 + i * 25,
        start: new Date(Date.parse(START) + i * 3_600_000).toISOString(),
        spanMs: 3 * DAY,
        seed: 100 + i,
        fleet: i % 2 === 0 ? 'even' : 'odd',
      }),
    );
    histories[uuid] = [];
    for await (const row of createReplayQueries(fleetDb.pool).exportEvents(uuid, {})) histories[uuid]!.push(row);
  }
  await createSnapshotter(fleetDb.pool, { every: 20 }).runOnce();
  const queries = createReplayQueries(fleetDb.pool);
  for (const hours of [2, 30, 50, 80]) {
    const at = new Date(Date.parse(START) + hours * 3_600_000).toISOString();
    const fleet = await queries.fleetAt(at);
    const expectedDevices = Object.entries(histories).filter(([, events]) =>
      Date.parse(events[0]!.timestamp) <= Date.parse(at)
    ).map(([uuid]) => uuid).sort();
    t.deepEqual(fleet.map((f) => f.summary.uuid).sort(), expectedDevices, `devices at ${at}`);
    for (const { summary, result } of fleet) {
      t.deepEqual(
        normalise(result.state),
        normalise(replayAt(histories[summary.uuid]!, at)),
        `${summary.uuid} at ${at}`,
      );
    }
    // read in two halves on two connections (as a fleet of 2,000 or more is): the same answer, in the same order
    const split = await createReplayQueries(fleetDb.pool, { fleetSplitAt: 1 }).fleetAt(at);
    t.deepEqual(
      split.map((f) => [f.summary, normalise(f.result.state), f.result.events_folded]),
      fleet.map((f) => [f.summary, normalise(f.result.state), f.result.events_folded]),
      `split fleet at ${at}`,
    );
    const odd = await queries.fleetAt(at, { fleet: 'odd' });
    t.true(odd.every((f) => f.summary.fleet_id === 'odd'));
  }
  const counted = await fleetDb.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM snapshots`,
  );
  t.true(counted > 10);
});
