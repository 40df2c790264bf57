// Day partitions of the telemetry tables (device_metrics, device_logs): created ahead of time
// by the maintenance job and on demand before a write whose day has none, and dropped whole
// once older than their own retention (METRICS_RETENTION_DAYS, LOGS_RETENTION_DAYS). Unlike
// the event log's, nothing is snapshotted or archived first: telemetry is not history.
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { utcDay } from '../event-store/partitions.ts';
import { listPartitions, retentionHorizon } from '../retention/partition-maintenance.ts';
import { sessionTransaction } from '../postgres/transaction.ts';

const DAY_MS = 86_400_000;

/** The day-partitioned telemetry tables. */
export type TelemetryTable = 'device_metrics' | 'device_logs';

export const TELEMETRY_TABLES: readonly TelemetryTable[] = ['device_metrics', 'device_logs'];

const nameRow = z.object({ name: z.string() });
const lockRow = z.object({ locked: z.boolean() });

/** Makes sure a day partition of `table` exists; returns its name. */
async function ensurePartition(connection: CommonQueryMethods, table: TelemetryTable, day: string): Promise<string> {
  return connection.oneFirst(
    sql.type(nameRow)`SELECT ensure_telemetry_partition(${table}, ${day}::date) AS name`,
  );
}

/** Remembers which days of one table have partitions, so a write asks PostgreSQL only for a new day. */
export function createTelemetryPartitionCache(table: TelemetryTable) {
  const known = new Set<string>();
  return {
    /** Makes sure the days of `instants` have partitions. */
    async ensure(connection: CommonQueryMethods, instants: readonly string[]): Promise<void> {
      for (const instant of instants) {
        const day = utcDay(instant);
        if (known.has(day)) continue;
        await ensurePartition(connection, table, day);
        known.add(day);
      }
    },
  };
}

/** A telemetry table's partition cache. */
export type TelemetryPartitionCache = ReturnType<typeof createTelemetryPartitionCache>;

/** Creates both tables' partitions for `now`'s day and `daysAhead` more; returns the names ensured. */
export async function ensureTelemetryPartitionsAhead(
  connection: CommonQueryMethods,
  now: Date,
  daysAhead: number,
): Promise<string[]> {
  const names: string[] = [];
  for (const table of TELEMETRY_TABLES) {
    for (let i = 0; i <= daysAhead; i += 1) {
      names.push(await ensurePartition(connection, table, utcDay(now.getTime() + i * DAY_MS)));
    }
  }
  return names;
}

/** Days kept per table; 0 keeps everything. */
export type TelemetryRetention = { metricsDays: number; logsDays: number };

/** What one telemetry retention pass dropped (and kept, with why). */
export type TelemetryRetentionRun = {
  skipped: 'locked' | null;
  dropped: { table: TelemetryTable; name: string; day: string; bytes: number }[];
  kept: { name: string; reason: string }[];
};

/**
 * Drops every partition of each telemetry table that lies wholly before its horizon (its
 * retention days before today's UTC midnight), oldest first. One instance at a time (an
 * advisory lock; the others skip); a drop that cannot get its lock within `lockTimeoutMs`
 * stays for the next pass.
 */
export async function runTelemetryRetention(
  pool: DatabasePool,
  options: TelemetryRetention & { clock: () => Date; lockTimeoutMs?: number; log?: (message: string) => void },
): Promise<TelemetryRetentionRun> {
  const run: TelemetryRetentionRun = { skipped: null, dropped: [], kept: [] };
  const days: Record<TelemetryTable, number> = { device_metrics: options.metricsDays, device_logs: options.logsDays };
  if (TELEMETRY_TABLES.every((table) => days[table] <= 0)) return run;
  return pool.connect(async (connection) => {
    const { locked } = await connection.one(
      sql.type(lockRow)`SELECT pg_try_advisory_lock(hashtext('devicetrail.telemetry_retention')) AS locked`,
    );
    if (!locked) return { ...run, skipped: 'locked' as const };
    try {
      for (const table of TELEMETRY_TABLES) {
        if (days[table] <= 0) continue;
        const horizon = Date.parse(retentionHorizon(options.clock(), days[table]));
        const due = (await listPartitions(connection, table)).filter((p) => Date.parse(p.to) <= horizon);
        for (const partition of due) {
          try {
            await sessionTransaction(connection, async (tx) => {
              await tx.query(
                sql.unsafe`SELECT set_config('lock_timeout', ${`${options.lockTimeoutMs ?? 5000}ms`}, true)`,
              );
              await tx.query(
                sql.unsafe`ALTER TABLE ${sql.identifier([table])} DETACH PARTITION ${sql.identifier([partition.name])}`,
              );
              await tx.query(sql.unsafe`DROP TABLE ${sql.identifier([partition.name])}`);
            });
            run.dropped.push({ table, name: partition.name, day: partition.day, bytes: partition.bytes });
            options.log?.(`retention: dropped ${partition.name} (${table} older than ${days[table]} days)`);
          } catch (error) {
            run.kept.push({ name: partition.name, reason: (error as Error).message });
            options.log?.(`retention: kept ${partition.name} until the next run: ${(error as Error).message}`);
            break;
          }
        }
      }
      return run;
    } finally {
      await connection.query(sql.unsafe`SELECT pg_advisory_unlock(hashtext('devicetrail.telemetry_retention'))`);
    }
  });
}
