// isoOfMs (replay's ISO text of an instant in ms) is `new Date(ms).toISOString()`, for every
// ms: boundaries of days, months, years, leap days, the years 0 and 9999 and Date's range,
// random instants over the whole range, and values Date truncates or refuses.
import test from 'ava';
import fc from 'fast-check';
import { isoOfMs } from '../../domain/replay/history.ts';

const MAX = 8.64e15;
const DAY = 86_400_000;

/** The same text, or the same error (Date throws a RangeError for an invalid time value). */
function outcome(f: () => string): string {
  try {
    return f();
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}
const check = (ms: number) => outcome(() => isoOfMs(ms)) === outcome(() => new Date(ms).toISOString());

test('boundaries: days, months, years, leap days, years 0, 9999 and 10000, the ends of the range', (t) => {
  const anchors: number[] = [0, -0, MAX, -MAX];
  for (let year = -3; year <= 10_002; year += year < 10 || year > 9_990 || (year > 1_895 && year < 2_105) ? 1 : 97) {
    for (let month = 0; month < 12; month += 1) {
      const first = new Date(0);
      first.setUTCFullYear(year, month, 1);
      first.setUTCHours(0, 0, 0, 0);
      anchors.push(first.getTime(), first.getTime() + 28 * DAY, first.getTime() + 29 * DAY); // also Feb 29 where there is one
    }
  }
  const offsets = [
    0,
    1,
    -1,
    999,
    1_000,
    -1_000,
    59_999,
    60_000,
    3_599_999,
    3_600_000,
    DAY - 1,
    DAY,
    -DAY,
    DAY + 1,
    43_200_000,
  ];
  let checked = 0;
  for (const anchor of anchors) {
    for (const offset of offsets) {
      const ms = anchor + offset;
      if (!check(ms)) t.fail(`${ms}: ${outcome(() => isoOfMs(ms))} vs ${outcome(() => new Date(ms).toISOString())}`);
      checked += 1;
    }
  }
  t.true(checked > 50_000);
  for (
    const ms of [
      MAX + 1,
      -MAX - 1,
      MAX + DAY,
      Number.MAX_SAFE_INTEGER,
      NaN,
      Infinity,
      -Infinity,
      1.5,
      -1.5,
      0.999,
      MAX - 0.5,
      1e300,
    ]
  ) {
    t.true(check(ms), String(ms));
  }
  t.is(isoOfMs(MAX), '+275760-09-13T00:00:00.000Z');
  t.is(isoOfMs(-1), '1969-12-31T23:59:59.999Z');
});

test('after an instant beyond the range or a fraction, the same day is still right (the day kept is not reused for them)', (t) => {
  t.is(isoOfMs(MAX), new Date(MAX).toISOString());
  t.throws(() => isoOfMs(MAX + 1), { instanceOf: RangeError });
  t.is(isoOfMs(1_000), new Date(1_000).toISOString());
  t.is(isoOfMs(1_000.7), new Date(1_000.7).toISOString());
});

test('property: random instants, over the whole range and near today, one after another (as a replay formats them)', (t) => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.integer({ min: -MAX, max: MAX }),
          fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }),
          fc.integer({ min: -MAX - 10, max: -MAX + 10 }),
          fc.integer({ min: MAX - 10, max: MAX + 10 }),
          fc.double(),
        ),
        { maxLength: 50 },
      ),
      (values) => values.every(check),
    ),
    { numRuns: 20_000 },
  );
  t.pass();
});
