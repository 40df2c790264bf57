// Partition maintenance: the day partitions of `events` as they stand (bounds, rows, size),
// and the pass that keeps today's and the next days' partitions in place. Safe to run from
// several instances at once: ensure_events_partition serialises creation on an advisory lock.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { ensurePartitionsAhead } from '../event-store/partitions.ts';

const DAY_MS = 86_400_000;

const partitionRow = z.object({ name: z.string(), bounds: z.string(), bytes: z.number() });
const countRow = z.object({ rows: z.number() });

/** One day partition of `events`: [from, to) in UTC. */
export type EventPartition = { name: string; day: string; from: string; to: string; bytes: number };

/** A partition with its exact row count. */
export type CountedPartition = EventPartition & { rows: number };

const BOUNDS = /FROM \('([^']+)'\) TO \('([^']+)'\)/;

/**
 * The day partitions of `events` (or of another day-partitioned table, `parent`), oldest
 * first (bounds read from the catalogue, not the name).
 */
export async function listPartitions(connection: CommonQueryMethods, parent = 'events'): Promise<EventPartition[]> {
  const rows = await connection.any(sql.type(partitionRow)`
    SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bounds, pg_total_relation_size(c.oid) AS bytes
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = ${parent}::regclass`);
  const partitions: EventPartition[] = [];
  for (const row of rows) {
    const match = BOUNDS.exec(row.bounds);
    if (match === null) continue; // not a range partition of ours (e.g. a DEFAULT partition added by hand)
    const from = new Date(match[1]!).toISOString();
    partitions.push({
      name: row.name,
      day: from.slice(0, 10),
      from,
      to: new Date(match[2]!).toISOString(),
      bytes: row.bytes,
    });
  }
  return partitions.sort((a, b) => a.from.localeCompare(b.from));
}

/** The partitions with exact row counts (one count(*) each: it reads every partition's index). */
export async function countPartitions(connection: CommonQueryMethods): Promise<CountedPartition[]> {
  const counted: CountedPartition[] = [];
  for (const partition of await listPartitions(connection)) {
    const { rows } = await connection.one(
      sql.type(countRow)`SELECT count(*)::bigint AS rows FROM ${sql.identifier([partition.name])}`,
    );
    counted.push({ ...partition, rows });
  }
  return counted;
}

/** The UTC midnight `days` days before the day of `now`: events before it are past retention. */
export function retentionHorizon(now: Date, days: number): string {
  const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return new Date(midnight - days * DAY_MS).toISOString();
}

/** What a maintenance pass did. */
export type MaintenancePass = { ensured: string[]; created: string[] };

/** Ensures partitions for the day of `now()` and `daysAhead` more; reports which were new. */
export async function runPartitionMaintenance(
  connection: CommonQueryMethods,
  options: { clock: () => Date; daysAhead: number },
): Promise<MaintenancePass> {
  const before = new Set((await listPartitions(connection)).map((p) => p.name));
  const ensured = await ensurePartitionsAhead(connection, options.clock(), options.daysAhead);
  return { ensured, created: ensured.filter((name) => !before.has(name)) };
}
