// Operator commands for the event log's partitions (registered in app/cli/admin.ts):
//   npm run admin -- partitions [--json]      partitions with row counts, sizes, the retention horizon
//   npm run admin -- retention [--dry-run]    run partition maintenance and retention now
import { parseArgs } from 'node:util';
import type { CommonQueryMethods, DatabasePool } from 'slonik';
import {
  type CountedPartition,
  countPartitions,
  retentionHorizon,
} from '../../infra/retention/partition-maintenance.ts';
import { readHorizon } from '../../infra/event-store/retention-horizon.ts';
import { partitionsBefore } from '../../infra/retention/retention.ts';
import { createMaintenanceJob } from '../../infra/retention/maintenance-job.ts';
import type { Config } from '../config.ts';

type Command = {
  summary: string;
  usage: string;
  run: (db: { pool: DatabasePool; config: Config }, argv: string[]) => Promise<number>;
};

/** What `partitions` shows. */
export type PartitionsReport = {
  retention_days: number;
  /** The horizon retention has reached (history before it is gone); null before the first drop. */
  recorded_horizon: string | null;
  /** The horizon RETENTION_DAYS gives today; partitions entirely before it are due. */
  target_horizon: string | null;
  partitions: (CountedPartition & { due: boolean })[];
  totals: { partitions: number; rows: number; bytes: number; due: number };
};

/** The partitions with counts and sizes, and where retention stands. */
export async function partitionsReport(
  connection: CommonQueryMethods,
  retentionDays: number,
  now: Date,
): Promise<PartitionsReport> {
  const partitions = await countPartitions(connection);
  const target = retentionDays > 0 ? retentionHorizon(now, retentionDays) : null;
  const due = new Set(target === null ? [] : partitionsBefore(partitions, target).map((p) => p.name));
  const rows = partitions.map((p) => ({ ...p, due: due.has(p.name) }));
  return {
    retention_days: retentionDays,
    recorded_horizon: (await readHorizon(connection))?.horizon ?? null,
    target_horizon: target,
    partitions: rows,
    totals: {
      partitions: rows.length,
      rows: rows.reduce((n, p) => n + p.rows, 0),
      bytes: rows.reduce((n, p) => n + p.bytes, 0),
      due: due.size,
    },
  };
}

const size = (
  bytes: number,
): string => (bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`);

/** The report as text. */
export function partitionsText(report: PartitionsReport): string {
  const lines = report.partitions.map((p) =>
    `${p.name}  ${p.day}  ${String(p.rows).padStart(10)} rows  ${size(p.bytes).padStart(9)}${
      p.due ? '  due for retention' : ''
    }`
  );
  const horizon = report.retention_days === 0
    ? 'retention: off (RETENTION_DAYS=0 keeps everything)'
    : `retention: ${report.retention_days} days; horizon now ${report.target_horizon} (${report.totals.due} partition(s) due); history kept from ${
      report.recorded_horizon ?? 'the first event (nothing dropped yet)'
    }`;
  return [
    ...lines,
    `${report.totals.partitions} partition(s), ${report.totals.rows} rows, ${size(report.totals.bytes)}`,
    horizon,
  ].join('\n');
}

/** `partitions`: list partitions. */
export const partitionsCommand: Command = {
  summary: 'list event partitions with row counts, sizes and the retention horizon',
  usage: 'partitions [--json]',
  async run(db, argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } } });
    const report = await partitionsReport(db.pool, db.config.RETENTION_DAYS, new Date());
    console.log(values.json === true ? JSON.stringify(report, null, 2) : partitionsText(report));
    return 0;
  },
};

/** `retention`: one maintenance pass now (or, with --dry-run, what it would drop). */
export const retentionCommand: Command = {
  summary: 'create partitions ahead and apply retention now (--dry-run: only list what would be dropped)',
  usage: 'retention [--dry-run]',
  async run(db, argv) {
    const { values } = parseArgs({ args: argv, options: { 'dry-run': { type: 'boolean' } } });
    if (values['dry-run'] === true) {
      const report = await partitionsReport(db.pool, db.config.RETENTION_DAYS, new Date());
      const due = report.partitions.filter((p) => p.due);
      console.log(
        due.length === 0
          ? 'nothing is due for retention'
          : due.map((p) => `would drop ${p.name} (${p.rows} rows)`).join('\n'),
      );
      return 0;
    }
    const job = createMaintenanceJob(db.pool, {
      clock: () => new Date(),
      daysAhead: db.config.PARTITION_DAYS_AHEAD,
      retentionDays: db.config.RETENTION_DAYS,
      archiveDir: db.config.ARCHIVE_DIR,
      log: (line) => console.error(line),
      onError: (message, error) => console.error(`${message}: ${(error as Error).message}`),
    });
    const run = await job.runOnce();
    const retention = run.retention;
    if (retention === null) return 1;
    if (retention.skipped !== null) {
      console.log(
        `retention skipped: ${
          retention.skipped === 'disabled' ? 'RETENTION_DAYS=0' : 'another instance is running it'
        }`,
      );
    } else {console.log(
        `horizon ${retention.horizon}: dropped ${retention.dropped.length} partition(s), ${retention.snapshots} horizon snapshot(s)${
          retention.kept.length === 0 ? '' : `; kept ${retention.kept.map((k) => `${k.name} (${k.reason})`).join(', ')}`
        }`,
      );}
    return retention.kept.length === 0 ? 0 : 1;
  },
};
