// A background sweep on a timer: runs once at start, then every `intervalMs` after the
// previous run ended (runs never overlap). `runOnce` sweeps now; tests call it with their
// own clock instead of waiting.

/** A periodic job. */
export type Sweeper = {
  readonly name: string;
  /** Sweeps now; resolves to the number of events written. */
  runOnce: () => Promise<number>;
  start: () => void;
  /** Stops the timer and waits for a run in progress. */
  stop: () => Promise<void>;
};

/** Wraps a sweep function in a timer. Errors go to `onError`; the next run still happens. */
export function createSweeper(
  name: string,
  sweep: () => Promise<number>,
  options: { intervalMs: number; onError: (message: string, error: unknown) => void },
): Sweeper {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let inFlight: Promise<void> | null = null;
  let started = false;

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      timer = null;
      inFlight = sweep().then(() => undefined, (error: unknown) => options.onError(`${name}: sweep failed`, error))
        .finally(() => {
          inFlight = null;
          if (started) schedule(options.intervalMs);
        });
    }, delayMs);
    // the HTTP server keeps the process alive, not the sweeper
    timer.unref();
  };

  return {
    name,
    runOnce: sweep,
    start() {
      if (started) return;
      started = true;
      schedule(0);
    },
    async stop() {
      started = false;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      await inFlight;
    },
  };
}
