// Replay's pure parts: the fold at an instant, states as time passes (also when timestamps
// go backwards), drift intervals and reconciliation delays, diffs, durations and instants.
import test from 'ava';
import { jsonEqual } from '../../domain/device/drift.ts';
import { FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { jsonDiff } from '../../domain/replay/diff.ts';
import { driftReport } from '../../domain/replay/drift.ts';
import {
  buildHistory,
  foldFrom,
  initialBase,
  replayAt,
  type ReplayBase,
  type ReplayEvent,
  stateInHistory,
} from '../../domain/replay/history.ts';
import { formatDuration, parseDuration, percentile } from '../../domain/replay/time.ts';
import { CliError, parseInstant } from '../../replay/command.ts';
import { generateHistory } from '../../bench/generate-history.ts';

const UUID = '1a2b0000-0000-4000-8000-000000000001';

function rowsOf(events: ReturnType<typeof generateHistory>): ReplayEvent[] {
  return events.map((e, i) => ({
    event_id: `e${i + 1}`,
    event_type: e.type,
    aggregate_version: i + 1,
    data: e.data as Record<string, unknown>,
    metadata: { actor: e.actor },
    timestamp: e.timestamp,
  }));
}

const same = (a: unknown, b: unknown) => jsonEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));

test('history: the state after every step is the state at that instant, even with timestamps going backwards', (t) => {
  const rows = rowsOf(
    generateHistory({
      uuid: UUID,
      count: 400,
      start: '2026-01-01T00:00:00.000Z',
      spanMs: 86_400_000,
      seed: 11,
      outOfOrder: 0.08,
      jitterMs: 30 * 60_000,
    }),
  );
  const backwards = rows.filter((r, i) => i > 0 && r.timestamp < rows[i - 1]!.timestamp).length;
  t.true(backwards > 10, `${backwards} events earlier than their predecessor`);
  const until = '2026-01-02T06:00:00.000Z';
  const history = buildHistory(initialBase(), rows, { until });
  t.is(history.steps.length, rows.length);
  // events of one command share an instant: the state at it is the one after the last of them
  const instantEnds = history.steps.filter((step, i) => history.steps[i + 1]?.at !== step.at);
  t.true(instantEnds.length > 100);
  for (const step of instantEnds) {
    t.true(same(step.after, replayAt(rows, step.at)), `at ${step.at}`);
    t.true(same(stateInHistory(history, step.at), replayAt(rows, step.at)));
  }
  // a window starting mid-way, from a base that covers the first 100 events
  const base: ReplayBase = {
    state: replayAt(rows.slice(0, 100), '9999-01-01T00:00:00.000Z'),
    version: 100,
    last_event_at: rows.slice(0, 100).map((r) => r.timestamp).sort().at(-1)!,
    last_seen_at: null,
  };
  const since = new Date(Date.parse(base.last_event_at!) + 3_600_000).toISOString();
  const windowed = buildHistory(base, rows, { since, until });
  t.true(same(windowed.start, replayAt(rows, since)));
  for (const [i, step] of windowed.steps.entries()) {
    if (windowed.steps[i + 1]?.at !== step.at) {
      t.true(same(step.after, replayAt(rows, step.at)), `windowed at ${step.at}`);
    }
  }
  t.true(same(foldFrom(base, rows, until).state, replayAt(rows, until)));
});

const at = (minute: number) => new Date(Date.parse('2026-05-01T10:00:00.000Z') + minute * 60_000).toISOString();
const provisioned = {
  event_type: 'device.provisioned',
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
};
const target = (version: number, image: string) => ({
  event_type: 'target_state.updated',
  data: {
    version,
    new_state: { apps: { '1': { services: [{ serviceName: 'main', image }] } }, config: {} },
    old_state: null,
    apps_added: [],
    apps_removed: [],
    apps_count: 1,
  },
});
const report = (status: string, image: string) => ({
  event_type: 'current_state.updated',
  data: { apps: { '1': { services: { main: { status, image } } } }, system: {}, resources: {}, apps_count: 1 },
});
const script = (...events: [number, { event_type: string; data: Record<string, unknown> }][]): StoredEvent[] =>
  events.map(([minute, e], i) => ({
    ...e,
    event_id: `e${i + 1}`,
    aggregate_type: 'device',
    aggregate_id: UUID,
    aggregate_version: i + 1,
    global_position: i + 1,
    transaction_id: '1',
    metadata: { actor: { type: e.event_type === 'current_state.updated' ? 'device' : 'admin', id: 'x' } },
    timestamp: at(minute),
    source: 'api',
    hash: '',
  }));

test('drift: intervals with start, end, what differed and what ended them; reconciliation delays', (t) => {
  const rows = script(
    [0, provisioned],
    [1, target(1, 'a:1')],
    [3, report('Running', 'a:1')],
    [10, report('Exited', 'a:1')],
    [14, report('Running', 'a:1')],
    [20, target(2, 'a:2')],
    [21, target(3, 'a:3')],
    [25, report('Running', 'a:3')],
    [30, report('Exited', 'a:3')],
  );
  const report1 = driftReport(buildHistory(initialBase(), rows, { until: at(40) }));
  t.deepEqual(report1.intervals.map((i) => [i.start, i.end, i.duration_ms, i.ended_by?.version ?? null]), [
    [at(1), at(3), 120_000, 3],
    [at(10), at(14), 240_000, 5],
    [at(20), at(25), 300_000, 8],
    [at(30), null, 600_000, null],
  ]);
  t.deepEqual(report1.intervals[0]!.differed, { apps_missing: ['1'] });
  t.is(report1.intervals[0]!.started_by?.event_type, 'target_state.updated');
  t.true(report1.intervals[3]!.ongoing);
  t.deepEqual(report1.reconciliations.map((r) => [r.target_version, r.status, r.delay_ms]), [
    [1, 'converged', 120_000],
    [2, 'superseded', null],
    [3, 'converged', 240_000],
  ]);
  t.is(report1.totals.out_of_sync_ms, 120_000 + 240_000 + 300_000 + 600_000);
  t.false(report1.in_sync_at_end);
  // a window that starts inside an interval keeps the interval's real start
  const windowed = driftReport(buildHistory(initialBase(), rows, { since: at(12), until: at(22) }));
  t.deepEqual(windowed.intervals.map((i) => [i.start, i.end, i.started_by]), [[at(10), at(14), null], [
    at(20),
    null,
    windowed.intervals[1]!.started_by,
  ]]);
  t.is(windowed.totals.out_of_sync_ms, 120_000 + 120_000, 'only time inside the window counts');
  t.deepEqual(windowed.reconciliations.map((r) => [r.target_version, r.status, r.waiting_ms]), [
    [2, 'superseded', null],
    [3, 'pending', 60_000],
  ]);
});

test('drift: events sharing an instant count as one change (no zero-length intervals)', (t) => {
  const rows = script([0, provisioned], [1, target(1, 'a:1')], [2, report('Running', 'a:1')], [
    5,
    report('Exited', 'a:1'),
  ], [5, report('Running', 'a:1')]);
  const result = driftReport(buildHistory(initialBase(), rows, { until: at(10) }));
  t.deepEqual(result.intervals.map((i) => [i.start, i.end]), [[at(1), at(2)]]);
});

test('foldFrom counts events and tracks when the device was last seen', (t) => {
  const rows = script([0, provisioned], [1, target(1, 'a:1')], [3, report('Running', 'a:1')], [9, target(2, 'a:2')]);
  const result = foldFrom(initialBase(), rows, at(20));
  t.is(result.events_folded, 4);
  t.is(result.last_seen_at, at(3));
  t.is(result.snapshot_version, null);
  t.is(foldFrom(initialBase(), rows, at(-1)).state.status, 'unregistered');
  t.true(FOLD_VERSION >= 1);
});

test('jsonDiff lists changed leaves as dotted paths, arrays whole', (t) => {
  t.deepEqual(jsonDiff({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { b: 2, c: [1, 2, 3] }, e: 1 }).map((c) => c.path), [
    'a.b',
    'a.c',
    'd',
    'e',
  ]);
  t.deepEqual(jsonDiff({ x: { y: 1 } }, { x: { y: 1 } }), []);
});

test('durations: parse "24h"-style text, format for people, percentiles by nearest rank', (t) => {
  t.is(parseDuration('24h'), 86_400_000);
  t.is(parseDuration('1h30m'), 5_400_000);
  t.is(parseDuration('2w'), 14 * 86_400_000);
  t.is(parseDuration('0s'), null);
  t.is(parseDuration('soon'), null);
  t.is(formatDuration(999), '999ms');
  t.is(formatDuration(1_500), '1.5s');
  t.is(formatDuration(60_000), '1m');
  t.is(formatDuration(3_723_000), '1h 2m');
  t.is(formatDuration(90_061_000), '1d 1h');
  t.is(percentile([5, 1, 4, 2, 3], 50), 3);
  t.is(percentile([5, 1, 4, 2, 3], 99), 5);
  t.is(percentile([], 50), null);
});

test('instants on the command line: ISO with zone, a date, "now", "-2h"; no zone is an error', (t) => {
  const now = () => '2026-05-01T12:00:00.000Z';
  t.is(parseInstant('2026-05-01T10:00:00+02:00', '--at', now), '2026-05-01T08:00:00.000Z');
  t.is(parseInstant('2026-05-01', '--at', now), '2026-05-01T00:00:00.000Z');
  t.is(parseInstant('now', '--at', now), now());
  t.is(parseInstant('-90m', '--at', now), '2026-05-01T10:30:00.000Z');
  t.throws(() => parseInstant('2026-05-01T10:00:00', '--at', now), { instanceOf: CliError, message: /no time zone/ });
  t.throws(() => parseInstant('-soon', '--at', now), { instanceOf: CliError, message: /not a duration/ });
  t.throws(() => parseInstant('2026-13-45T10:00:00Z', '--at', now), {
    instanceOf: CliError,
    message: /not an instant/,
  });
});
