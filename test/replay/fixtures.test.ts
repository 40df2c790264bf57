// The fixture suite: every recorded stream in fixtures/ is replayed through the domain fold
// and checked against the expected states beside it. Adding a scenario needs no code here.
// The second half proves the suite can fail: broken expectations and altered events.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { checkExpectations, checkFixtureFile, type Sidecar, sidecarPath } from '../../replay/fixture-check.ts';
import { parseNdjson } from '../../infra/replay/fixture-source.ts';

const dir = path.resolve(import.meta.dirname, '../../fixtures');
const fixtures = readdirSync(dir).filter((f) => /\.ndjson(\.gz)?$/.test(f)).sort();
const sidecars = readdirSync(dir).filter((f) => f.endsWith('.expected.json')).sort();

test('fixtures/ holds at least six recorded scenarios, each with its expectations', (t) => {
  t.true(fixtures.length >= 6, `${fixtures.length} fixtures`);
  t.deepEqual(
    sidecars.map((f) => f.replace('.expected.json', '')),
    fixtures.map((f) => f.replace(/\.ndjson(\.gz)?$/, '')),
    'every fixture has a sidecar and every sidecar a fixture',
  );
});

for (const file of fixtures) {
  test(`fixture ${file}: replay agrees with every expected state`, async (t) => {
    const result = await checkFixtureFile(path.join(dir, file));
    t.true(result.checked >= 3, `${result.checked} expectation(s)`);
    t.deepEqual(result.failures, []);
  });
}

// the mutation tests use the richest fixture that has both drift and target changes
const sample = 'drift-and-recovery';
const events = () => parseNdjson(readFileSync(path.join(dir, `${sample}.ndjson`), 'utf8'), sample);
const sidecar = (): Sidecar => JSON.parse(readFileSync(sidecarPath(path.join(dir, `${sample}.ndjson`)), 'utf8'));

test('the unmodified sample passes (so the failures below come from the mutations)', (t) => {
  t.deepEqual(checkExpectations(events(), sidecar(), sample).failures, []);
});

test('a broken expected state fails, naming the instant and the path', (t) => {
  const broken = sidecar();
  const expectation = broken.expectations.find((e) =>
    e.state !== undefined && (e.state['drift'] as { in_sync: boolean }).in_sync === false
  )!;
  (expectation.state!['drift'] as { in_sync: boolean }).in_sync = true;
  const result = checkExpectations(events(), broken, sample);
  t.is(result.failures.length, 1);
  t.regex(result.failures[0]!, /drift\.in_sync: expected true, got false/);
  t.true(result.failures[0]!.includes(expectation.at));
});

test('a broken named check fails', (t) => {
  const broken = sidecar();
  const expectation = broken.expectations.find((e) => typeof e.checks?.['target.version'] === 'number')!;
  expectation.checks!['target.version'] = 99;
  const result = checkExpectations(events(), broken, sample);
  t.is(result.failures.length, 1);
  t.regex(result.failures[0]!, /target\.version: expected 99, got 1/);
});

test('expecting "not registered yet" after registration fails, and the reverse too', (t) => {
  const early = sidecar();
  early.expectations[0]!.registered = true;
  t.regex(
    checkExpectations(events(), early, sample).failures.join('\n'),
    /expected a registered device, but it does not exist yet/,
  );
  const late = sidecar();
  late.expectations[late.expectations.length - 1]!.registered = false;
  t.regex(checkExpectations(events(), late, sample).failures.join('\n'), /expected the device not to exist yet/);
});

test('a wrong drift interval fails', (t) => {
  const broken = sidecar();
  broken.drift!.intervals[0]!.end = null;
  t.regex(checkExpectations(events(), broken, sample).failures.join('\n'), /drift intervals up to/);
});

test('an altered event fails its hash chain', (t) => {
  const altered = events();
  (altered[3]!.data as Record<string, unknown>)['apps_count'] = 7;
  t.regex(checkExpectations(altered, sidecar(), sample).failures.join('\n'), /does not match its hash/);
});

test('a removed event is a gap in the versions', (t) => {
  const removed = events().filter((e) => e.aggregate_version !== 5);
  t.regex(checkExpectations(removed, sidecar(), sample).failures.join('\n'), /version 5 is missing/);
});

test('an event with data its schema refuses is reported', async (t) => {
  const { eventHash, GENESIS_HASH } = await import('../../infra/event-store/event-hash.ts');
  const bad = events();
  bad[0]!.data = { ...bad[0]!.data, device_name: 42 };
  // re-chain so the hash check passes and the schema check is what fails
  let previous = GENESIS_HASH;
  for (const e of bad) {
    e.hash = eventHash(previous, e);
    previous = e.hash;
  }
  t.regex(checkExpectations(bad, sidecar(), sample).failures.join('\n'), /device_name/);
});
