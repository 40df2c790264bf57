// The replay command line: every command with --fixture (no database), its help, its
// errors and exit codes; and a real process against a database (DATABASE_URL), which it
// refuses, unchanged, when its schema is behind.
import { execFile } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { jsonEqual } from '../../domain/device/drift.ts';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { replayAt } from '../../domain/replay/history.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { runCli } from '../../replay/cli.ts';
import type { CommandContext } from '../../replay/command.ts';
import { openFixtures } from '../../infra/replay/fixture-source.ts';
import { adminQuery, createTestDatabase, databaseUrl, type TestDatabase } from '../helpers/database.ts';
import { listMigrations } from '../../infra/postgres/migrate.ts';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { appendHistory, generateHistory } from '../../bench/generate-history.ts';

const root = path.resolve(import.meta.dirname, '../..');
const fixture = (name: string) => path.join(root, 'fixtures', `${name}.ndjson`);
const sidecar = async (name: string) =>
  JSON.parse(await readFile(path.join(root, 'fixtures', `${name}.expected.json`), 'utf8'));
const run = promisify(execFile);

/** Runs a command line in this process with captured output. */
async function cli(argv: string[], options: { tty?: boolean; database?: TestDatabase } = {}) {
  let stdout = '';
  let stderr = '';
  const ctx: CommandContext = {
    stdout: {
      write: (s: string) => {
        stdout += s;
      },
      isTTY: options.tty ?? false,
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
      },
      isTTY: options.tty ?? false,
    },
    openDatabase: async () => {
      if (options.database === undefined) throw new Error('this test has no database');
      return { source: createReplayQueries(options.database.pool), close: async () => {} };
    },
    openFixtures: async (files) => ({ source: await openFixtures(files), close: async () => {} }),
  };
  const code = await runCli(argv, ctx);
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}

const COMMANDS = ['state', 'diff', 'drift', 'fleet', 'timeline', 'export', 'analytics', 'check'];

test('every command has --help with its usage and options', async (t) => {
  for (const name of COMMANDS) {
    const result = await cli([name, '--help']);
    t.is(result.code, 0, name);
    t.true(result.stdout.startsWith(`usage: npm run replay -- ${name}`), name);
    t.regex(result.stdout, /options:/);
    t.regex(result.stdout, /example:/);
  }
  const overview = await cli(['--help']);
  for (const name of COMMANDS) t.true(overview.stdout.includes(`  ${name} `), name);
});

test('state --fixture: the state the live service held at a recorded instant', async (t) => {
  const expected = (await sidecar('drift-and-recovery')).expectations.filter((e: { state?: unknown }) =>
    e.state !== undefined
  );
  for (const e of [expected[2], expected[expected.length - 1]]) {
    const result = await cli(['state', '--fixture', fixture('drift-and-recovery'), '--at', e.at, '--json']);
    t.is(result.code, 0, result.stderr);
    const { uuid: _u, at, in_sync: _i, last_seen_at: _l, replay: _r, ...state } = result.json();
    t.is(at, e.at);
    t.true(jsonEqual(JSON.parse(JSON.stringify({ status: 'registered', ...state })), e.state), e.label);
  }
  const text = await cli(['state', '--fixture', fixture('drift-and-recovery'), '--at', expected[4].at]);
  t.regex(text.stdout, /OUT OF SYNC since/);
  t.regex(text.stdout, /2000\/worker not running/);
});

test('state: errors say what is wrong, with exit code 2 for usage and 1 for "not there"', async (t) => {
  const f = fixture('seed-walkthrough');
  const before = await cli(['state', '--fixture', f, '--at', '2026-03-09T11:00:00Z']);
  t.is(before.code, 1);
  t.regex(before.stderr, /did not exist at 2026-03-09T11:00:00\.000Z: it was registered at 2026-03-09T12:00:01\.000Z/);
  const missing = await cli(['state', '--fixture', f]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--at <instant> is required/);
  const noZone = await cli(['state', '--fixture', f, '--at', '2026-03-09T12:00:00']);
  t.is(noZone.code, 2);
  t.regex(noZone.stderr, /has no time zone; add one, e\.g\. 2026-03-09T12:00:00Z/);
  const garbage = await cli(['state', '--fixture', f, '--at', 'tuesday']);
  t.regex(garbage.stderr, /not an instant/);
  const unknownFlag = await cli(['state', '--fixture', f, '--when', 'now']);
  t.is(unknownFlag.code, 2);
  t.regex(unknownFlag.stderr, /Unknown option '--when'/);
  const badUuid = await cli(['state', 'not-a-uuid', '--fixture', f, '--at', 'now']);
  t.regex(badUuid.stderr, /is not a device uuid/);
  const unknownDevice = await cli(['state', '00000000-0000-4000-8000-000000000000', '--fixture', f, '--at', 'now']);
  t.is(unknownDevice.code, 1);
  t.regex(unknownDevice.stderr, /no device 00000000-0000-4000-8000-000000000000 in fixture/);
  const twoDevices = await cli(['state', '--fixture', f, '--fixture', fixture('many-apps'), '--at', 'now']);
  t.is(twoDevices.code, 2);
  t.regex(twoDevices.stderr, /give the device uuid \(the source holds 2 devices\)/);
  const noFile = await cli(['state', '--fixture', '/nonexistent.ndjson', '--at', 'now']);
  t.is(noFile.code, 1);
  t.regex(noFile.stderr, /cannot read fixture \/nonexistent\.ndjson: ENOENT/);
  const relative = await cli(['state', '--fixture', f, '--at', '-1m', '--json']);
  t.is(relative.json().at, '2026-03-09T12:03:01.000Z', '"-1m" is a minute before the fixture\'s last event');
});

test('drift --fixture: the intervals the live service saw, and reconciliation delays', async (t) => {
  for (const name of ['drift-and-recovery', 'failing-service', 'target-changed-before-convergence']) {
    const expected = (await sidecar(name)).drift;
    const result = await cli(['drift', '--fixture', fixture(name), '--until', expected.until, '--json']);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(
      result.json().intervals.map((i: { start: string; end: string | null }) => ({ start: i.start, end: i.end })),
      expected.intervals,
      name,
    );
  }
  const superseded = await cli(['drift', '--fixture', fixture('target-changed-before-convergence'), '--json']);
  t.deepEqual(
    superseded.json().reconciliations.map((
      r: { target_version: number; status: string },
    ) => [r.target_version, r.status]),
    [[1, 'superseded'], [2, 'converged']],
  );
  const text = await cli(['drift', '--fixture', fixture('failing-service')]);
  t.regex(text.stdout, /ongoing/);
  t.regex(text.stdout, /3000\/db not running/);
});

test('diff --fixture: target, apps, services and the events behind each change', async (t) => {
  const result = await cli([
    'diff',
    '--fixture',
    fixture('many-apps'),
    '--from',
    '2026-03-08T03:30:00Z',
    '--to',
    'now',
    '--json',
  ]);
  t.is(result.code, 0, result.stderr);
  const report = result.json();
  t.deepEqual(report.summary.target_version, { before: 1, after: 2 });
  t.deepEqual(report.summary.target_apps, { added: ['6012'], removed: ['6000', '6001'], changed: [] });
  t.true(
    report.changes.every((c: { caused_by: unknown[] }) => c.caused_by.length > 0),
    'every change is attributed to an event',
  );
  const text = await cli(['diff', '--fixture', fixture('many-apps'), '--from', '2026-03-08T03:30:00Z', '--to', 'now']);
  t.regex(text.stdout, /Target {5}v1 → v2/);
  t.regex(text.stdout, /apps {7}\+6012 {2}-6000 {2}-6001/);
  const reversed = await cli([
    'diff',
    '--fixture',
    fixture('many-apps'),
    '--from',
    'now',
    '--to',
    '2026-03-08T03:30:00Z',
  ]);
  t.is(reversed.code, 1);
  t.regex(reversed.stderr, /from .* is after to/);
});

test('fleet --fixture: every device at an instant with totals; progress bar only on a terminal', async (t) => {
  const all = ['drift-and-recovery', 'failing-service', 'many-apps', 'disable-enable', 'seed-walkthrough'].flatMap((
    n,
  ) => ['--fixture', fixture(n)]);
  const result = await cli(['fleet', '--at', '2026-03-06T09:40:00Z', '--json', ...all]);
  t.is(result.code, 0, result.stderr);
  const status = result.json();
  t.deepEqual(status.totals, {
    devices: 3,
    in_sync: 2,
    out_of_sync: 1,
    inactive: 1,
    without_target: 0,
    never_reported: 0,
  });
  const quiet = await cli(['fleet', '--at', 'now', ...all]);
  t.is(quiet.stderr, '');
  t.regex(quiet.stdout, /5 device\(s\)/);
  const tty = await cli(['fleet', '--at', 'now', ...all], { tty: true });
  t.regex(tty.stderr, /\rreplaying devices \[░+\] 0\/5 0%/);
  t.regex(tty.stderr, /5\/5 100%/);
  const fleet = await cli(['fleet', '--at', 'now', '--fleet', 'nope', '--json', ...all]);
  t.is(fleet.json().totals.devices, 0);
});

test('export --fixture gives back the fixture byte for byte; --since/--until cut it', async (t) => {
  const f = fixture('disable-enable');
  const original = await readFile(f, 'utf8');
  const result = await cli(['export', '--fixture', f]);
  t.is(result.code, 0);
  t.is(result.stdout, original);
  const dir = await mkdtemp(path.join(tmpdir(), 'replay-export-'));
  const out = path.join(dir, 'cut.ndjson');
  const cut = await cli([
    'export',
    '--fixture',
    f,
    '--since',
    '2026-03-06T09:30:00Z',
    '--until',
    '2026-03-06T11:00:00Z',
    '--out',
    out,
  ]);
  t.is(cut.code, 0);
  const lines = (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as StoredEvent);
  t.true(lines.length > 0 && lines.length < original.trim().split('\n').length);
  t.true(lines.every((e) => e.timestamp >= '2026-03-06T09:30:00.000Z' && e.timestamp <= '2026-03-06T11:00:00.000Z'));
  t.deepEqual(Object.keys(lines[0]!), [
    'event_id',
    'event_type',
    'aggregate_type',
    'aggregate_id',
    'aggregate_version',
    'global_position',
    'transaction_id',
    'data',
    'metadata',
    'timestamp',
    'source',
    'hash',
  ]);
  t.regex(cut.stderr, /exported \d+ event\(s\)/);
  const cannot = await cli(['export', '--fixture', f, '--out', '/nonexistent-dir/x.ndjson']);
  t.is(cannot.code, 1);
  t.regex(cannot.stderr, /cannot write \/nonexistent-dir\/x\.ndjson: ENOENT/);
});

test("analytics --fixture: the seed's questions over the fixtures", async (t) => {
  const names = [
    'provision-target-converge',
    'drift-and-recovery',
    'failing-service',
    'disable-enable',
    'target-changed-before-convergence',
    'many-apps',
    'seed-walkthrough',
  ];
  const rows = (await Promise.all(names.map((n) => readFile(fixture(n), 'utf8')))).flatMap((text) =>
    text.trim().split('\n').map((l) => JSON.parse(l) as StoredEvent)
  );
  const result = await cli([
    'analytics',
    '--window',
    '30d',
    '--json',
    ...names.flatMap((n) => ['--fixture', fixture(n)]),
  ]);
  t.is(result.code, 0, result.stderr);
  const a = result.json();
  t.is(a.target_changes.total, rows.filter((r) => r.event_type === 'target_state.updated').length);
  t.is(a.reports.total, rows.filter((r) => r.event_type === 'current_state.updated').length);
  t.is(a.reconciliation.targets, a.target_changes.total);
  t.is(a.reconciliation.superseded, 1);
  t.true(a.reconciliation.delay_ms.p50 > 0 && a.reconciliation.delay_ms.max >= a.reconciliation.delay_ms.p90);
  t.true(
    a.drifting_now.devices.some((d: { device_name: string }) => d.device_name === 'fixture-0f1e0003'),
    'the failing service still drifts',
  );
  const text = await cli(['analytics', ...names.flatMap((n) => ['--fixture', fixture(n)])]);
  t.regex(text.stdout, /Reconciliation delay/);
  t.regex(text.stdout, /p50 .* p90 .* p99 .* max/);
  const bad = await cli(['analytics', '--window', 'a while']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--window: "a while" is not a duration/);
});

test('check: passes on fixtures/, fails on a broken copy', async (t) => {
  const ok = await cli(['check', '--dir', path.join(root, 'fixtures')]);
  t.is(ok.code, 0, ok.stdout);
  t.regex(ok.stdout, /(\d+)\/\1 fixture\(s\) pass/);
  const dir = await mkdtemp(path.join(tmpdir(), 'replay-check-'));
  await writeFile(path.join(dir, 'x.ndjson'), await readFile(fixture('seed-walkthrough')));
  const expected = await sidecar('seed-walkthrough');
  expected.expectations[2].checks = { is_active: false };
  await writeFile(path.join(dir, 'x.expected.json'), JSON.stringify(expected));
  const broken = await cli(['check', path.join(dir, 'x.ndjson')]);
  t.is(broken.code, 1);
  t.regex(broken.stdout, /FAIL .*x\.ndjson/);
  t.regex(broken.stdout, /is_active: expected false, got true/);
});

test('timeline --html writes a self-contained page; "-" writes it to stdout', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replay-timeline-'));
  const file = path.join(dir, 't.html');
  const result = await cli(['timeline', '--fixture', fixture('drift-and-recovery'), '--html', file, '--json']);
  t.is(result.code, 0, result.stderr);
  t.is(result.json().drift_intervals, 3);
  const html = await readFile(file, 'utf8');
  t.is((html.match(/class="drift-band"/g) ?? []).length, 3);
  const stdout = await cli(['timeline', '--fixture', fixture('seed-walkthrough'), '--html', '-']);
  t.true(stdout.stdout.startsWith('<!doctype html>'));
  const missing = await cli(['timeline', '--fixture', fixture('seed-walkthrough')]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /--html <file> is required/);
});

test('export --out and timeline --html write 0600 files and replace a symlink at the path instead of following it', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'replay-private-'));
  const victim = path.join(dir, 'victim.txt');
  for (
    const [flag, name, argv] of [
      ['--out', 'events.ndjson', ['export', '--fixture', fixture('disable-enable')]],
      ['--html', 'timeline.html', ['timeline', '--fixture', fixture('drift-and-recovery')]],
    ] as const
  ) {
    await writeFile(victim, 'not yours to overwrite\n', { mode: 0o644 });
    const target = path.join(dir, name);
    await symlink(victim, target);
    const result = await cli([...argv, flag, target]);
    t.is(result.code, 0, result.stderr);
    t.is(await readFile(victim, 'utf8'), 'not yours to overwrite\n', `${flag}: the symlink's target is untouched`);
    const written = await lstat(target);
    t.false(written.isSymbolicLink(), `${flag}: the symlink itself was replaced`);
    t.is(written.mode & 0o777, 0o600, `${flag}: mode 0600`);
    t.true((await readFile(target, 'utf8')).length > 0);
    // an existing file of someone's making is replaced by a private one too
    await writeFile(target, 'old', { mode: 0o644 });
    t.is((await cli([...argv, flag, target])).code, 0);
    t.is((await lstat(target)).mode & 0o777, 0o600, `${flag}: mode 0600 over an existing file`);
  }
  t.deepEqual((await readdir(dir)).sort(), ['events.ndjson', 'timeline.html', 'victim.txt'], 'no temporary file left');
  const failed = await cli(['export', '--fixture', fixture('disable-enable'), '--out', path.join(dir, 'no', 'x')]);
  t.is(failed.code, 1);
  t.regex(failed.stderr, /cannot write .*: ENOENT/);
});

test('a real process: npm run replay against a database (DATABASE_URL), and unknown commands', async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const uuid = '7c1d0000-0000-4000-8000-000000000001';
  await appendHistory(
    db.pool,
    createEventStore(db.pool),
    uuid,
    generateHistory({ uuid, count: 300, start: '2026-01-10T00:00:00.000Z', spanMs: 3 * 86_400_000, seed: 3 }),
  );
  const rows: StoredEvent[] = [];
  for await (const row of createReplayQueries(db.pool).exportEvents(uuid, {})) rows.push(row);
  const env = { ...process.env, DATABASE_URL: db.url };
  const at = '2026-01-11T12:00:00.000Z';
  const state = await run(process.execPath, ['--import', 'tsx', 'replay/cli.ts', 'state', uuid, '--at', at, '--json'], {
    cwd: root,
    env,
  });
  const view = JSON.parse(state.stdout);
  const reference = replayAt(rows, at);
  t.is(view.version, reference.version);
  t.true(
    jsonEqual(
      JSON.parse(JSON.stringify({ ...reference, status: undefined })),
      JSON.parse(
        JSON.stringify({
          ...view,
          uuid: undefined,
          at: undefined,
          in_sync: undefined,
          last_seen_at: undefined,
          replay: undefined,
        }),
      ),
    ),
  );
  const exported = await run(process.execPath, ['--import', 'tsx', 'replay/cli.ts', 'export', uuid], {
    cwd: root,
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  t.deepEqual(exported.stdout.trim().split('\n').map((l) => JSON.parse(l).event_id), rows.map((r) => r.event_id));
  const unknown = await run(process.execPath, ['--import', 'tsx', 'replay/cli.ts', 'rewind'], { cwd: root, env }).catch(
    (e: { code: number; stderr: string }) => e,
  );
  t.is((unknown as { code: number }).code, 2);
  t.regex((unknown as { stderr: string }).stderr, /unknown command "rewind"/);
  const fleet = await cli(['fleet', '--at', at, '--json'], { database: db });
  t.is(fleet.json().totals.devices, 1);
});

test('a real process: replay refuses a database that is behind, naming npm run migrate, and applies nothing', async (t) => {
  const replay = (url: string, argv: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'replay/cli.ts', ...argv], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: url },
    }).then(() => ({ code: 0, stderr: '' }), (e: { code: number; stderr: string }) => e);
  const names = z.object({ name: z.string() });
  const newest = (await listMigrations()).at(-1)!;

  // a database one migration behind: the newest is not recorded
  const behind = await createTestDatabase({ poolSize: 1 });
  t.teardown(() => behind.drop());
  await behind.pool.query(sql.unsafe`DELETE FROM schema_migrations WHERE name = ${newest}`);
  const recorded =
    async () => [...await behind.pool.anyFirst(sql.type(names)`SELECT name FROM schema_migrations ORDER BY name`)];
  const before = await recorded();
  for (const argv of [['fleet', '--at', 'now'], ['verify']]) {
    const result = await replay(behind.url, argv);
    t.is(result.code, 1, argv[0]);
    t.regex(
      result.stderr,
      /^replay: the database schema is behind this release: 1 migration\(s\) not applied/m,
      argv[0],
    );
    t.true(result.stderr.includes(newest), argv[0]);
    t.true(result.stderr.includes('run `npm run migrate` first'), argv[0]);
  }
  t.deepEqual(await recorded(), before, 'nothing applied');

  // a database never migrated: refused too, and still without a single table afterwards
  const name = `dt_test_empty_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await adminQuery(`CREATE DATABASE ${name} TEMPLATE template0`);
  t.teardown(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const empty = await replay(databaseUrl(name), ['state', '--at', 'now']);
  t.is(empty.code, 1);
  t.regex(empty.stderr, /migration\(s\) not applied \(001_event_store\.sql, /);
  t.regex(empty.stderr, /npm run migrate/);
  const pool = await createDatabasePool(databaseUrl(name), { maximumPoolSize: 1 });
  t.teardown(() => pool.end());
  const tables = await pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`,
  );
  t.is(tables, 0, 'no migration ran');
});
