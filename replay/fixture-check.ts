// Checks a fixture against its sidecar of expected states: the events are replayed through
// the domain fold and every expectation (full state, named paths, "not registered yet",
// drift intervals) is compared. The fixture suite and `replay check` both use this.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { jsonEqual } from '../domain/device/drift.ts';
import type { DeviceState } from '../domain/device/state.ts';
import { compact } from '../domain/replay/describe.ts';
import { jsonDiff } from '../domain/replay/diff.ts';
import { driftReport } from '../domain/replay/drift.ts';
import { buildHistory, replayAt } from '../domain/replay/history.ts';
import type { StoredEvent } from '../domain/recorded-event.ts';
import { FixtureError, fixtureSource, readFixtureFile } from '../infra/replay/fixture-source.ts';

const instant = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO instant');

/** One expected state at an instant. */
export const expectationSchema = z.object({
  at: instant,
  label: z.string().min(1),
  /** false: the device must not exist yet at `at`. */
  registered: z.boolean().default(true),
  /** The whole folded state the live service held at `at`. */
  state: z.record(z.string(), z.unknown()).optional(),
  /** Dotted path → value, e.g. {"target.version": 2, "drift.in_sync": false}. */
  checks: z.record(z.string(), z.unknown()).optional(),
}).strict();

/** The sidecar file `<name>.expected.json` beside `<name>.ndjson`. */
export const sidecarSchema = z.object({
  scenario: z.string().min(1),
  description: z.string(),
  device: z.string().min(1),
  recorded: z.record(z.string(), z.unknown()).optional(),
  expectations: z.array(expectationSchema).min(1),
  /** Intervals out of sync as the live service saw them, up to `until`. */
  drift: z.object({
    until: instant,
    intervals: z.array(z.object({ start: instant, end: instant.nullable() }).strict()),
  }).strict().optional(),
}).strict();

/** A parsed sidecar. */
export type Sidecar = z.infer<typeof sidecarSchema>;

/** The outcome of checking one fixture. */
export type FixtureCheck = { fixture: string; scenario: string; checked: number; failures: string[] };

/** The value at a dotted path ("target.apps.1000.appName"). */
export function valueAt(value: unknown, path: string): unknown {
  let current: unknown = value;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

const roundTrip = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

/** Checks events against a sidecar; never throws for a failed expectation, only lists it. */
export function checkExpectations(events: readonly StoredEvent[], sidecar: Sidecar, fixture: string): FixtureCheck {
  const failures: string[] = [];
  let checked = 0;
  try {
    fixtureSource(events, fixture); // validates every row's data and every hash chain
  } catch (error) {
    return { fixture, scenario: sidecar.scenario, checked: 0, failures: [(error as Error).message] };
  }
  const stream = events.filter((e) => e.aggregate_type === 'device' && e.aggregate_id === sidecar.device)
    .sort((a, b) => a.aggregate_version - b.aggregate_version);
  if (stream.length === 0) failures.push(`device ${sidecar.device} has no events in ${fixture}`);
  for (const expectation of sidecar.expectations) {
    const where = `at ${expectation.at} (${expectation.label})`;
    const at = new Date(expectation.at).toISOString();
    const state: DeviceState = replayAt(stream, at);
    checked += 1;
    if (!expectation.registered) {
      if (state.status !== 'unregistered') {
        failures.push(`${where}: expected the device not to exist yet, but it is registered`);
      }
      continue;
    }
    if (state.status !== 'registered') {
      failures.push(`${where}: expected a registered device, but it does not exist yet`);
      continue;
    }
    if (expectation.state !== undefined) {
      const got = roundTrip(state);
      if (!jsonEqual(got, expectation.state)) {
        const diffs = jsonDiff(expectation.state, got);
        failures.push(
          `${where}: state differs in ${diffs.length} place(s): ${
            diffs.slice(0, 5).map((d) => `${d.path}: expected ${compact(d.before, 60)}, got ${compact(d.after, 60)}`)
              .join('; ')
          }`,
        );
      }
    }
    for (const [path, expected] of Object.entries(expectation.checks ?? {})) {
      const got = valueAt(state, path);
      if (!jsonEqual(roundTrip(got ?? null), expected)) {
        failures.push(`${where}: ${path}: expected ${compact(expected, 60)}, got ${compact(got, 60)}`);
      }
    }
  }
  if (sidecar.drift !== undefined) {
    checked += 1;
    const until = new Date(sidecar.drift.until).toISOString();
    const report = driftReport(
      buildHistory(
        { state: { status: 'unregistered', version: 0 }, version: 0, last_event_at: null, last_seen_at: null },
        stream,
        { until },
      ),
    );
    const got = report.intervals.map((i) => ({ start: i.start, end: i.end }));
    const want = sidecar.drift.intervals.map((i) => ({
      start: new Date(i.start).toISOString(),
      end: i.end === null ? null : new Date(i.end).toISOString(),
    }));
    if (!jsonEqual(got, want)) {
      failures.push(`drift intervals up to ${until}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
    }
  }
  return { fixture, scenario: sidecar.scenario, checked, failures };
}

/** The sidecar path of a fixture: `x.ndjson` → `x.expected.json`. */
export const sidecarPath = (fixture: string): string => fixture.replace(/\.ndjson(\.gz)?$/, '.expected.json');

/** Reads and validates a sidecar file. */
export async function readSidecar(file: string): Promise<Sidecar> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new FixtureError(
      `cannot read the expectations ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FixtureError(`${file}: not JSON (${(error as Error).message})`);
  }
  const parsed = sidecarSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FixtureError(`${file}: ${issue.path.join('.') || 'file'}: ${issue.message}`);
  }
  return parsed.data;
}

/** Checks a fixture file against its sidecar; unreadable files count as failures. */
export async function checkFixtureFile(fixture: string): Promise<FixtureCheck> {
  try {
    const [events, sidecar] = await Promise.all([readFixtureFile(fixture), readSidecar(sidecarPath(fixture))]);
    return checkExpectations(events, sidecar, fixture);
  } catch (error) {
    if (error instanceof FixtureError) return { fixture, scenario: '?', checked: 0, failures: [error.message] };
    throw error;
  }
}
