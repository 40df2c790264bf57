// The sweep timer: runs at start and again after each run, never two at once; a failing run
// is reported and the next one still happens; stop waits for the run in progress.
import test from 'ava';
import { createSweeper } from '../../infra/devices/sweeper.ts';
import { setImmediate } from 'node:timers';

test('runs at start, repeats, survives a failing run, never overlaps, and stop waits for the run in progress', async (t) => {
  const errors: unknown[] = [];
  let runs = 0;
  let active = 0;
  let maxActive = 0;
  let release: (() => void) | null = null;
  let reachedFourth: () => void = () => {};
  const fourth = new Promise<void>((resolve) => {
    reachedFourth = resolve;
  });
  const sweeper = createSweeper('test-sweeper', async () => {
    runs += 1;
    active += 1;
    maxActive = Math.max(maxActive, active);
    try {
      if (runs === 2) throw new Error('boom');
      if (runs === 4) {
        reachedFourth();
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      }
      return runs;
    } finally {
      active -= 1;
    }
  }, {
    intervalMs: 1,
    onError: (message, error) => {
      errors.push([message, (error as Error).message]);
    },
  });

  // the sweeper's timer does not keep a process alive (the HTTP server does); this test's must
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(keepAlive));
  sweeper.start();
  sweeper.start(); // a second start changes nothing
  await fourth;
  let stopped = false;
  const stopping = sweeper.stop().then(() => {
    stopped = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.false(stopped, 'stop waits for the run in progress');
  release!();
  await stopping;
  t.is(runs, 4, 'no run after stop');
  t.is(maxActive, 1);
  t.deepEqual(errors, [['test-sweeper: sweep failed', 'boom']]);
  t.is(await sweeper.runOnce(), 5, 'runOnce sweeps now, also when stopped');
});
