// Retention over 120 simulated days of 100 devices, with 90 days kept: exactly the partitions
// before the horizon go, read models, present state and replay after the horizon do not
// change, an instant before the horizon is a clear error (replay, CLI, HTTP 410), verify
// passes, and the archives hold exactly the dropped events, readable by replay.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { verifyArchive } from '../../infra/retention/archive.ts';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import {
  type EventPartition,
  listPartitions,
  runPartitionMaintenance,
} from '../../infra/retention/partition-maintenance.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { createSnapshotter } from '../../infra/replay/snapshotter.ts';
import { ReplayError } from '../../domain/replay/source.ts';
import { readHorizon } from '../../infra/event-store/retention-horizon.ts';
import { PROVISIONING_KEY_FOLD_VERSION, type RetentionRun, runRetention } from '../../infra/retention/retention.ts';
import { createSnapshotStore } from '../../infra/event-store/snapshots.ts';
import { verifyChains } from '../../infra/event-store/verify.ts';
import { partitionsReport } from '../../app/cli/partitions.ts';
import { runCli } from '../../replay/cli.ts';
import type { CommandContext } from '../../replay/command.ts';
import { openFixtures } from '../../infra/replay/fixture-source.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { DAY, KEY_ID, writeFleet } from './scenario.ts';

const NOW = '2026-06-15T12:00:00.000Z';
const HORIZON = '2026-03-17T00:00:00.000Z'; // UTC midnight of NOW's day, minus 90 days
const AFTER = new Date(Date.parse(HORIZON) + 3 * DAY + 5 * 3_600_000).toISOString();
const BEFORE = new Date(Date.parse(HORIZON) - 10 * DAY).toISOString();
const rowsOf = z.object({ row: z.unknown() });
const idRow = z.object({ event_id: z.string() });

let app: TestApp;
let now = NOW;
let uuids: string[] = [];
let archiveDir = '';
let partitionsBefore: EventPartition[] = [];
let readModelBefore: unknown[] = [];
let doomed: string[] = [];
let run: RetentionRun;
const statesNow = new Map<string, unknown>();
const statesAfter = new Map<string, unknown>();
const cliBefore = new Map<string, unknown>();
let earlyDevice = '';

const clock = () => new Date(now);
const comparable = (result: { state: unknown; last_seen_at: string | null; events_folded: number }) =>
  JSON.parse(
    JSON.stringify({ state: result.state, last_seen_at: result.last_seen_at, events_folded: result.events_folded }),
  );
const withoutReplay = (view: Record<string, unknown>) => {
  const { replay: _replay, ...rest } = view;
  return rest;
};

async function cli(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const ctx: CommandContext = {
    stdout: {
      write: (s: string) => {
        stdout += s;
      },
      isTTY: false,
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
      },
      isTTY: false,
    },
    openDatabase: async () => ({
      source: createReplayQueries(app.db.pool, { clock }),
      close: async () => {},
      pool: app.db.pool,
    }),
    openFixtures: async (files) => ({ source: await openFixtures(files), close: async () => {} }),
  };
  const code = await runCli(argv, ctx);
  return { code, stdout, stderr };
}

const readModel =
  async () => [...await app.db.pool.anyFirst(sql.type(rowsOf)`SELECT to_jsonb(d) AS row FROM devices d ORDER BY uuid`)];

test.before(async () => {
  app = await startTestApp({ clock });
  const pool = app.db.pool;
  archiveDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-archive-'));
  const started = Date.now();
  uuids = await writeFleet(pool, {
    now: NOW,
    devices: 100,
    days: 120,
    eventsPerDevice: 120,
    lateFrom: 90,
    lateDays: 40,
  });
  await createSnapshotter(pool, { every: 25 }).runOnce();
  await runPartitionMaintenance(pool, { clock, daysAhead: 7 });
  partitionsBefore = await listPartitions(pool);
  readModelBefore = await readModel();
  doomed = [
    ...await pool.anyFirst(
      sql.type(idRow)`SELECT event_id FROM events WHERE "timestamp" < ${HORIZON}::timestamptz ORDER BY event_id`,
    ),
  ];
  const queries = createReplayQueries(pool, { clock });
  for (const uuid of uuids) {
    statesNow.set(uuid, comparable(await queries.stateAt(uuid, NOW)));
    statesAfter.set(uuid, comparable(await queries.stateAt(uuid, AFTER)));
  }
  earlyDevice = uuids[3]!;
  for (const uuid of [earlyDevice, uuids[40]!]) {
    const result = await cli(['state', uuid, '--at', BEFORE, '--json']);
    if (result.code !== 0) throw new Error(result.stderr);
    cliBefore.set(uuid, withoutReplay(JSON.parse(result.stdout)));
  }
  const setupMs = Date.now() - started;
  run = await runRetention(pool, { retentionDays: 90, archiveDir, clock });
  console.log(
    `retention scenario: ${readModelBefore.length} devices, ${doomed.length} events before the horizon; setup ${setupMs} ms, retention ${
      Date.now() - started - setupMs
    } ms`,
  );
});

test.after.always(async () => {
  await app?.close();
});

test.serial('exactly the partitions entirely before the horizon are dropped, oldest first', async (t) => {
  const expected = partitionsBefore.filter((p) => Date.parse(p.to) <= Date.parse(HORIZON)).map((p) => p.name);
  t.is(expected.length, 30); // 120 days of history, 90 kept
  t.is(run.horizon, HORIZON);
  t.deepEqual(run.kept, []);
  t.deepEqual(run.dropped.map((d) => d.name), expected);
  const after = (await listPartitions(app.db.pool)).map((p) => p.name);
  t.deepEqual(after, partitionsBefore.map((p) => p.name).filter((n) => !expected.includes(n)));
  t.is((await readHorizon(app.db.pool))?.horizon, HORIZON);
  const report = await partitionsReport(app.db.pool, 90, clock());
  t.is(report.recorded_horizon, HORIZON);
  t.is(report.totals.due, 0);
  t.true(report.partitions.every((p) => p.rows >= 0 && p.bytes > 0));
});

test.serial('every device and the provisioning key with events before the horizon got a horizon snapshot', async (t) => {
  t.is(run.anchors, 91); // 90 early devices + the provisioning key; the 10 late devices registered after the horizon
  t.is(run.snapshots, 91);
  const key = await createSnapshotStore(app.db.pool).latest('provisioning_key', KEY_ID, PROVISIONING_KEY_FOLD_VERSION);
  t.like(key?.state, { status: 'revoked', fleet_id: 'fleet-r', version: 2 });
});

test.serial("read models and every device's present state are unchanged", async (t) => {
  t.deepEqual(await readModel(), readModelBefore);
  const queries = createReplayQueries(app.db.pool, { clock });
  for (const uuid of uuids) t.deepEqual(comparable(await queries.stateAt(uuid, NOW)), statesNow.get(uuid), uuid);
});

test.serial('the state at an instant after the horizon equals the answer before retention', async (t) => {
  const queries = createReplayQueries(app.db.pool, { clock });
  for (const uuid of uuids) t.deepEqual(comparable(await queries.stateAt(uuid, AFTER)), statesAfter.get(uuid), uuid);
  const http = await app.request('GET', `/api/v1/devices/${earlyDevice}/state?at=${AFTER}`, { token: app.adminToken });
  t.is(http.status, 200);
  t.deepEqual(
    JSON.parse(JSON.stringify(http.body.target)),
    (statesAfter.get(earlyDevice) as { state: { target: unknown } }).state.target,
  );
  // a whole-history read starts at the horizon instead of failing
  const drift = await app.request('GET', `/api/v1/devices/${earlyDevice}/drift`, { token: app.adminToken });
  t.is(drift.status, 200, drift.text);
});

test.serial('an instant before the horizon is a clear error naming the horizon: replay, CLI (exit 1), HTTP 410', async (t) => {
  const queries = createReplayQueries(app.db.pool, { clock });
  const error = await t.throwsAsync(queries.stateAt(earlyDevice, BEFORE), { instanceOf: ReplayError });
  t.is(error!.code, 'before_retention_horizon');
  t.true(error!.message.includes(HORIZON));
  const result = await cli(['state', earlyDevice, '--at', BEFORE]);
  t.is(result.code, 1);
  t.regex(result.stderr, new RegExp(`before the retention horizon ${HORIZON.replace(/\./g, '\\.')}`));
  const http = await app.request('GET', `/api/v1/devices/${earlyDevice}/state?at=${BEFORE}`, { token: app.adminToken });
  t.is(http.status, 410);
  t.is(http.body.error.code, 'before_retention_horizon');
  t.deepEqual(http.body.error.details, { at: BEFORE, horizon: HORIZON });
  const fleet = await app.request('GET', `/api/v1/fleet/status?at=${BEFORE}`, { token: app.adminToken });
  t.is(fleet.status, 410);
});

test.serial('verify passes on every chain, starting from the retention anchors', async (t) => {
  const result = await verifyChains(app.db.pool);
  t.deepEqual(result.breaks, []);
  t.is(result.aggregates, 101);
  const remaining = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`,
  );
  t.is(result.events, remaining);
  const cliResult = await cli(['verify']);
  t.is(cliResult.code, 0, cliResult.stdout);
  t.regex(cliResult.stdout, /every chain is intact/);
});

test.serial('the archives hold exactly the dropped events, and replay reads them', async (t) => {
  const manifests = (await readdir(archiveDir)).filter((f) => f.endsWith('.manifest.json')).sort();
  t.is(manifests.length, run.dropped.length);
  const ids: string[] = [];
  for (const [i, file] of manifests.entries()) {
    const check = await verifyArchive(path.join(archiveDir, file));
    t.deepEqual(check.problems, [], file);
    t.is(check.rows, run.dropped[i]!.rows);
    ids.push(...check.event_ids);
  }
  t.is(ids.length, doomed.length);
  t.deepEqual(ids.sort(), doomed);
  const archives = (await readdir(archiveDir)).filter((f) => f.endsWith('.ndjson.gz')).sort().map((f) =>
    path.join(archiveDir, f)
  );
  for (const [uuid, expected] of cliBefore) {
    const result = await cli(['state', uuid, '--at', BEFORE, '--json', ...archives.flatMap((a) => ['--fixture', a])]);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(withoutReplay(JSON.parse(result.stdout)), expected);
  }
});

test.serial('an event for a day before the horizon is refused instead of recreating the dropped partition', async (t) => {
  const store = createEventStore(app.db.pool);
  const error = await t.throwsAsync(app.db.pool.transaction(async (tx) => {
    const head = await store.head(tx, 'device', 'ffffffff-0000-4000-8000-000000000000');
    await store.append(tx, 'device', 'ffffffff-0000-4000-8000-000000000000', head, [{
      event_type: 'device.online',
      data: {},
      metadata: { actor: { type: 'system', id: 'test' } },
      timestamp: BEFORE,
      source: 'api',
    }]);
  }));
  t.regex(String((error!.cause as Error | undefined)?.message ?? error!.message), /before the retention horizon/);
});

test.serial('a run on the same day drops nothing; a day later drops one more partition from the earlier snapshots', async (t) => {
  const again = await runRetention(app.db.pool, { retentionDays: 90, clock });
  t.deepEqual(again.dropped, []);
  now = new Date(Date.parse(NOW) + DAY).toISOString();
  const next = await runRetention(app.db.pool, { retentionDays: 90, clock });
  t.deepEqual(next.dropped.map((d) => d.name), ['events_20260317']);
  t.deepEqual(next.kept, []);
  const queries = createReplayQueries(app.db.pool, { clock });
  for (const uuid of uuids) {
    t.deepEqual(comparable(await queries.stateAt(uuid, NOW)), statesNow.get(uuid), uuid);
    t.deepEqual(comparable(await queries.stateAt(uuid, AFTER)), statesAfter.get(uuid), uuid);
  }
  t.deepEqual((await verifyChains(app.db.pool)).breaks, []);
  t.deepEqual(await readModel(), readModelBefore);
});
