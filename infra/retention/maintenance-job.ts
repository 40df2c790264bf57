// The hourly maintenance job: partitions for today and the days ahead, then retention (the
// event log's, then the telemetry tables' own: device_metrics and device_logs, issue #15).
// Runs at start and every `intervalMs`; safe with several instances (partition creation is
// serialised in the database, retention takes an advisory lock and the others skip it).
import type { DatabasePool } from 'slonik';
import { runPartitionMaintenance } from './partition-maintenance.ts';
import { type RetentionRun, runRetention } from './retention.ts';
import {
  ensureTelemetryPartitionsAhead,
  runTelemetryRetention,
  type TelemetryRetention,
  type TelemetryRetentionRun,
} from '../telemetry/partitions.ts';

/** Options: the clock, days ahead, retention days (0 keeps everything), archive directory. */
export type MaintenanceOptions = {
  clock: () => Date;
  daysAhead: number;
  retentionDays: number;
  archiveDir?: string | undefined;
  /** Days the telemetry tables keep (METRICS_RETENTION_DAYS, LOGS_RETENTION_DAYS; 0 keeps all); default 30 and 14. */
  telemetry?: TelemetryRetention | undefined;
  intervalMs?: number | undefined;
  log?: ((message: string) => void) | undefined;
  onError?: ((message: string, error: unknown) => void) | undefined;
};

/** What one pass did. */
export type MaintenanceRun = {
  created: string[];
  retention: RetentionRun | null;
  telemetry: TelemetryRetentionRun | null;
};

/** Creates the job; `start()` runs a pass now and then every interval, `stop()` waits for the pass in flight. */
export function createMaintenanceJob(pool: DatabasePool, options: MaintenanceOptions) {
  const log = options.log ?? (() => {});
  const onError = options.onError ?? (() => {});
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let stopped = false;

  /** One pass: partitions ahead, then retention (each failure reported, neither stops the other). */
  async function runOnce(): Promise<MaintenanceRun> {
    const result: MaintenanceRun = { created: [], retention: null, telemetry: null };
    try {
      result.created =
        (await runPartitionMaintenance(pool, { clock: options.clock, daysAhead: options.daysAhead })).created;
      if (result.created.length > 0) log(`partitions: created ${result.created.join(', ')}`);
    } catch (error) {
      onError('creating partitions ahead failed', error);
    }
    try {
      await ensureTelemetryPartitionsAhead(pool, options.clock(), options.daysAhead);
    } catch (error) {
      onError('creating telemetry partitions ahead failed', error);
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
    try {
      result.telemetry = await runTelemetryRetention(pool, {
        ...(options.telemetry ?? { metricsDays: 30, logsDays: 14 }),
        clock: options.clock,
        log,
      });
    } catch (error) {
      onError('telemetry retention failed', error);
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
