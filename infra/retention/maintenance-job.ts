// The hourly maintenance job: partitions for today and the days ahead, then retention. Runs
// at start and every `intervalMs`; safe with several instances (partition creation is
// serialised in the database, retention takes an advisory lock and the others skip it).
import type { DatabasePool } from 'slonik';
import { runPartitionMaintenance } from './partition-maintenance.ts';
import { type RetentionRun, runRetention } from './retention.ts';

/** Options: the clock, days ahead, retention days (0 keeps everything), archive directory. */
export type MaintenanceOptions = {
  clock: () => Date;
  daysAhead: number;
  retentionDays: number;
  archiveDir?: string | undefined;
  intervalMs?: number | undefined;
  log?: ((message: string) => void) | undefined;
  onError?: ((message: string, error: unknown) => void) | undefined;
};

/** What one pass did. */
export type MaintenanceRun = { created: string[]; retention: RetentionRun | null };

/** Creates the job; `start()` runs a pass now and then every interval, `stop()` waits for the pass in flight. */
export function createMaintenanceJob(pool: DatabasePool, options: MaintenanceOptions) {
  const log = options.log ?? (() => {});
  const onError = options.onError ?? (() => {});
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let stopped = false;

  /** One pass: partitions ahead, then retention (each failure reported, neither stops the other). */
  async function runOnce(): Promise<MaintenanceRun> {
    const result: MaintenanceRun = { created: [], retention: null };
    try {
      result.created =
        (await runPartitionMaintenance(pool, { clock: options.clock, daysAhead: options.daysAhead })).created;
      if (result.created.length > 0) log(`partitions: created ${result.created.join(', ')}`);
    } catch (error) {
      onError('creating partitions ahead failed', error);
    }
    try {
      result.retention = await runRetention(pool, {
        retentionDays: options.retentionDays,
        archiveDir: options.archiveDir,
        clock: options.clock,
        log,
      });
    } catch (error) {
      onError('retention failed', error);
    }
    return result;
  }

  function schedule(delayMs: number): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runOnce().finally(() => {
        running = null;
        schedule(options.intervalMs ?? 3_600_000);
      });
    }, delayMs);
    timer.unref();
  }

  return {
    runOnce,
    /** Runs a pass now, then every `intervalMs` (default one hour) until `stop()`. */
    start(): void {
      stopped = false;
      schedule(0);
    },
    /** Stops after the pass in progress, if any. */
    async stop(): Promise<void> {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      await running;
    },
  };
}

/** The maintenance job type. */
export type MaintenanceJob = ReturnType<typeof createMaintenanceJob>;
