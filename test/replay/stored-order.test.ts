// Hardening issue, finding 1, on the read side. A log written before migration 011 may hold an
// event stamped before the event of the version before it; replay reads every event at its
// instant, the latest timestamp of its stream so far (docs/REPLAY.md "The one definition"), so
// the state at T is always the first n events: a state the device was in. The definition, the
// database's reads, history steps, drift and diff all give that answer; the log still verifies;
// migration 011 records the latest timestamp of such a stream; and a long history is folded in
// slices, /healthz answering between them.
import { readFile } from 'node:fs/promises';
import test from 'ava';
import pg from 'pg';
import { sql } from 'slonik';
import { z } from 'zod';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { createDriftTracker, driftReport } from '../../domain/replay/drift.ts';
import {
  buildHistory,
  eventInstants,
  FOLD_SLICE,
  foldFrom,
  foldWindow,
  initialBase,
  replayAt,
  runThrough,
  stateInHistory,
} from '../../domain/replay/history.ts';
import { replayDiff, replayDrift } from '../../domain/replay/service.ts';
import type { ReplaySource } from '../../domain/replay/source.ts';
import {
  appendAsBefore011,
  appendHistory,
  type GeneratedEvent,
  generateHistory,
} from '../../bench/generate-history.ts';
import { verifyChains } from '../../infra/event-store/verify.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const UUID = '0dd00000-0000-4000-8000-000000000011';
const at = (minute: number) => new Date(Date.parse('2026-05-01T10:00:00.000Z') + minute * 60_000).toISOString();
const admin = { type: 'admin' as const, id: 'test' };
const device = { type: 'device' as const, id: UUID };
const provisioned = {
  type: 'device.provisioned',
  data: {
    device_name: 'legacy',
    device_type: 't',
    fleet_id: 'f',
    ip_address: null,
    mac_address: null,
    os_version: null,
    supervisor_version: null,
    provisioning_key_id: 'k',
  },
  actor: { type: 'provisioning_key' as const, id: 'k' },
};
const target = {
  type: 'target_state.updated',
  data: {
    version: 1,
    new_state: { apps: { '1': { services: [{ serviceName: 'main', image: 'a:1' }] } }, config: {} },
    old_state: null,
    apps_added: ['1'],
    apps_removed: [],
    apps_count: 1,
  },
  actor: admin,
};
const report = (status: string) => ({
  type: 'current_state.updated',
  data: { apps: { '1': { services: { main: { status, image: 'a:1' } } } }, system: {}, resources: {}, apps_count: 1 },
  actor: device,
});

/**
 * v4 was decided at 10:03 but committed after v3 (10:05): before migration 011 it was stored
 * with 10:03. Its instant is 10:05, v3's: the two are one change at 10:05.
 */
const legacy = [
  { ...provisioned, timestamp: at(0) },
  { ...target, timestamp: at(1) },
  { ...report('Running'), timestamp: at(5) },
  { ...report('Exited'), timestamp: at(3) },
  { ...report('Running'), timestamp: at(8) },
] as GeneratedEvent[];

const rowsOf = (events: readonly GeneratedEvent[]): StoredEvent[] =>
  events.map((e, i) => ({
    event_id: `e${i + 1}`,
    event_type: e.type,
    aggregate_type: 'device',
    aggregate_id: UUID,
    aggregate_version: i + 1,
    global_position: i + 1,
    transaction_id: '1',
    data: e.data as Record<string, unknown>,
    metadata: { actor: e.actor },
    timestamp: e.timestamp,
    source: 'api',
    hash: '',
  }));

test("the definition: an event stamped before an earlier version counts from that version's instant; the state at T is always the first n events", (t) => {
  const rows = rowsOf(legacy);
  t.deepEqual(eventInstants(rows).map((ms) => new Date(ms).toISOString()), [at(0), at(1), at(5), at(5), at(8)]);
  // at 10:04, v4 (stamped 10:03) is not yet part of the past: v3 is not, and v4 came after it
  t.is(replayAt(rows, at(4)).version, 2);
  t.is(replayAt(rows, at(3)).version, 2, 'not v1, v2 and v4: a state the device never was in');
  t.is(replayAt(rows, at(5)).version, 4);
  t.is(replayAt(rows, at(8)).version, 5);
  // the fast path, also when the read left out the events stamped after T (as the database's does)
  for (const minute of [2, 3, 4, 5, 6, 8]) {
    const all = foldFrom(initialBase(), rows, at(minute));
    const read = foldFrom(initialBase(), rows.filter((r) => r.timestamp <= at(minute)), at(minute));
    t.is(all.events_folded, replayAt(rows, at(minute)).version, `all events, at minute ${minute}`);
    t.is(read.events_folded, all.events_folded, `events filtered by timestamp, at minute ${minute}`);
    t.deepEqual(read.state, replayAt(rows, at(minute)));
  }
  // history: one step per event at its instant, in version order
  const history = buildHistory(initialBase(), rows, { until: at(10) });
  t.deepEqual(history.steps.map((s) => [s.event.aggregate_version, s.at]), [
    [1, at(0)],
    [2, at(1)],
    [3, at(5)],
    [4, at(5)],
    [5, at(8)],
  ]);
  for (const minute of [0, 1, 3, 4, 5, 7, 8, 9]) {
    t.deepEqual(stateInHistory(history, at(minute)), replayAt(rows, at(minute)), `history at minute ${minute}`);
  }
  // one drift interval: out of sync from the target (10:01) until the last report (10:08); v3
  // and v4 share 10:05 and leave the device out of sync, so there is no interval ending at 10:05
  const drift = driftReport(history);
  t.deepEqual(drift.intervals.map((i) => [i.start, i.end, i.ended_by?.version]), [[at(1), at(8), 5]]);
  // a window that starts between the two stamps
  const windowed = buildHistory(initialBase(), rows, { since: at(4), until: at(10) });
  t.is(windowed.start.version, 2);
  t.deepEqual(windowed.steps.map((s) => s.event.aggregate_version), [3, 4, 5]);
});

test('the drift view built as the fold goes (no history kept) equals the drift report of the history', (t) => {
  const rows = rowsOf(generateHistory({
    uuid: UUID,
    count: 3_000,
    start: '2026-01-01T00:00:00.000Z',
    spanMs: 86_400_000,
    seed: 5,
    outOfOrder: 0.1,
    jitterMs: 20 * 60_000,
  }));
  for (
    const window of [
      { until: '2026-01-03T00:00:00.000Z' },
      { since: '2026-01-01T06:00:00.000Z', until: '2026-01-01T18:00:00.000Z' },
    ]
  ) {
    const tracker = createDriftTracker({ since: window.since ?? null, until: window.until });
    runThrough(foldWindow(initialBase(), rows, window, tracker));
    const streamed = tracker.finish();
    t.true(streamed.intervals.length > 10);
    t.deepEqual(streamed, driftReport(buildHistory(initialBase(), rows, window)));
  }
});

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
  await appendAsBefore011(app.db.pool, app.deps.store, UUID, legacy);
});
test.after.always(async () => {
  await app?.close();
});

test.serial('the database and HTTP give the documented answer for a stored log with an event stamped before an earlier version', async (t) => {
  const get = (path: string) => app.request('GET', `/api/v1/devices/${UUID}${path}`, { token: app.adminToken });
  const stateAt = async (minute: number) => (await get(`/state?at=${encodeURIComponent(at(minute))}`)).body;
  t.is((await stateAt(3)).version, 2);
  t.is((await stateAt(4)).version, 2);
  t.is((await stateAt(5)).version, 4);
  t.is((await stateAt(9)).version, 5);
  const drift = await get(`/drift?until=${encodeURIComponent(at(10))}`);
  t.is(drift.status, 200, drift.text);
  t.deepEqual(drift.body.intervals.map((i: { start: string; end: string }) => [i.start, i.end]), [[at(1), at(8)]]);
  const diff = await get(`/diff?from=${encodeURIComponent(at(4))}&to=${encodeURIComponent(at(6))}`);
  t.deepEqual(diff.body.events.map((e: { version: number }) => e.version), [3, 4]);
  // the chain covers the timestamps as they were stored: the log verifies
  t.deepEqual((await verifyChains(app.db.pool, { aggregate: UUID })).breaks, []);
  // and the next event is stamped no earlier than the latest timestamp of the stream
  const head = await app.deps.store.head(app.db.pool, 'device', UUID);
  t.is(head.last_timestamp, at(8));
  const [next] = await app.db.pool.transaction((tx) =>
    app.deps.store.append(tx, 'device', UUID, head, [{
      event_type: 'current_state.updated',
      data: report('Running').data,
      metadata: { actor: device },
      timestamp: at(6),
      source: 'api',
    }])
  );
  t.is(next!.timestamp, at(8));
});

test.serial("migration 011 records each stream's latest timestamp, also when its last event is not the latest", async (t) => {
  await app.db.pool.query(sql.unsafe`UPDATE streams SET last_timestamp = NULL`);
  const migration = await readFile(
    new URL('../../infra/postgres/migrations/011_stream_time_order.sql', import.meta.url),
    'utf8',
  );
  const backfill = migration.slice(migration.indexOf('WITH latest AS'));
  const client = new pg.Client({ connectionString: app.db.url });
  await client.connect();
  try {
    await client.query(backfill);
  } finally {
    await client.end();
  }
  const latest = await app.db.pool.oneFirst(sql.type(z.object({ last_timestamp: z.string().nullable() }))`
    SELECT last_timestamp FROM streams WHERE aggregate_type = 'device' AND aggregate_id = ${UUID}`);
  t.is(latest, at(8));
});

/**
 * Runs `view` while asking /healthz back to back; returns the progress (`progress()`) at every
 * answer to a request sent and answered while `folding()`.
 */
async function healthzDuring<T>(view: () => Promise<T>, folding: () => boolean, progress: () => number) {
  const answered: number[] = [];
  let done = false;
  const probe = (async () => {
    while (!done) {
      const sentWhileFolding = folding();
      const response = await fetch(`${app.baseUrl}/healthz`);
      await response.arrayBuffer();
      if (sentWhileFolding && folding() && !done) answered.push(progress());
    }
  })();
  try {
    return { result: await view(), answered };
  } finally {
    done = true;
    await probe;
  }
}

test.serial('a long history is folded in slices: /healthz is answered while the drift and diff views fold', async (t) => {
  const uuid = '0dd00000-0000-4000-8000-000000000012';
  const events = generateHistory({
    uuid,
    count: 24_000,
    start: '2026-03-01T00:00:00.000Z',
    spanMs: 5 * 86_400_000,
    seed: 16,
  });
  await appendHistory(app.db.pool, app.deps.store, uuid, events, 2_000);
  const queries = createReplayQueries(app.db.pool);
  const until = '2026-03-07T00:00:00.000Z';

  // the drift view folds each batch as the database's cursor hands it over
  let folded = 0;
  let folding = false;
  const batches: ReplaySource = {
    ...queries,
    windowBatches: async (...args) => {
      const { base, each } = await queries.windowBatches!(...args);
      return {
        base,
        each: (consume) =>
          each((rows) => {
            folding = true;
            consume(rows);
            folded += rows.length;
          }),
      };
    },
  };
  const drift = await healthzDuring(() => replayDrift(batches, uuid, { until }), () => folding, () => folded);
  folding = false;
  t.log(
    `drift: ${drift.result.intervals.length} intervals over ${folded} events; /healthz answered ${drift.answered.length} time(s) meanwhile`,
  );
  t.is(folded, events.length);
  t.true(drift.answered.length > 0, '/healthz was sent and answered while the drift view folded');
  t.true(drift.answered.some((n) => n > 0 && n < folded), 'between two batches of the fold');

  // the diff view keeps the history (its steps' states), folded in slices with a pause between
  let pauses = 0;
  const pausing: ReplaySource = {
    ...queries,
    window: async (...args) => {
      const window = await queries.window(...args);
      folding = true;
      return window;
    },
    pause: async () => {
      pauses += 1;
      await queries.pause!();
    },
  };
  const from = events[1]!.timestamp;
  const diff = await healthzDuring(() => replayDiff(pausing, uuid, from, until), () => folding, () => pauses);
  folding = false;
  t.log(
    `diff: ${diff.result.events.length} events in ${
      pauses + 1
    } slices; /healthz answered ${diff.answered.length} time(s) meanwhile`,
  );
  t.true(pauses >= Math.floor(events.length / FOLD_SLICE), `${pauses} pauses (the fold's and the diff's)`);
  t.true(diff.answered.some((p) => p > 0 && p < pauses), '/healthz was answered between two slices of the diff view');
});
