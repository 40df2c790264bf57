// The one retry helper: backoff delays and the runner's attempts, refusals, callbacks and stop signal.
import test from 'ava';
import { backoffDelay, retry, RetryAbortedError } from '../../infra/retry.ts';

test('backoffDelay doubles from the base up to the cap', (t) => {
  const backoff = { baseMs: 100, maxMs: 1000 };
  t.deepEqual([1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, backoff)), [100, 200, 400, 800, 1000, 1000]);
});

test('backoffDelay spreads by ± the jitter fraction, from the injected random source', (t) => {
  const at = (r: number) => backoffDelay(3, { baseMs: 1000, maxMs: 3_600_000, jitter: 0.2, random: () => r });
  t.deepEqual([at(0), at(0.5), at(0.999999)], [3200, 4000, 4800]);
});

test('retry calls again until success, telling onRetry each failure and its delay', async (t) => {
  const seen: string[] = [];
  const result = await retry(async (attempt) => {
    if (attempt < 3) throw new Error(`fail ${attempt}`);
    return attempt;
  }, {
    attempts: 5,
    delay: { baseMs: 1, maxMs: 10 },
    onRetry: (error, attempt, ms) => {
      seen.push(`${(error as Error).message} #${attempt} ${ms}ms`);
    },
  });
  t.is(result, 3);
  t.deepEqual(seen, ['fail 1 #1 1ms', 'fail 2 #2 2ms']);
});

test('retry rethrows the last failure once the attempts are spent', async (t) => {
  let calls = 0;
  await t.throwsAsync(
    retry(() => Promise.reject(new Error(`fail ${++calls}`)), { attempts: 3 }),
    { message: 'fail 3' },
  );
  t.is(calls, 3);
});

test('retry rethrows at once a failure shouldRetry refuses', async (t) => {
  let calls = 0;
  await t.throwsAsync(
    retry(() => Promise.reject(new TypeError(`fail ${++calls}`)), {
      attempts: 8,
      shouldRetry: (error) => !(error instanceof TypeError),
    }),
    { instanceOf: TypeError, message: 'fail 1' },
  );
  t.is(calls, 1);
});

test('the stop signal ends a wait early with RetryAbortedError; the first attempt runs regardless', async (t) => {
  const stop = new AbortController();
  stop.abort();
  let calls = 0;
  const started = Date.now();
  const error = await t.throwsAsync(
    retry(() => Promise.reject(new Error(`fail ${++calls}`)), {
      delay: { baseMs: 60_000, maxMs: 60_000 },
      signal: stop.signal,
    }),
    { instanceOf: RetryAbortedError },
  );
  t.is(calls, 1);
  t.is((error?.cause as Error).message, 'fail 1');
  t.true(Date.now() - started < 1000, 'the 60 s wait did not run out');
});

test('a custom wait replaces the timer (a loop passes its own wake-able sleep)', async (t) => {
  const waits: number[] = [];
  const result = await retry(async (attempt) => {
    if (attempt < 4) throw new Error('again');
    return 'done';
  }, {
    delay: { baseMs: 250, maxMs: 30_000 },
    wait: (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
  });
  t.is(result, 'done');
  t.deepEqual(waits, [250, 500, 1000]);
});
