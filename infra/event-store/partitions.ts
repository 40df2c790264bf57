// Day partitions of `events`: created ahead of time, and on demand before an append
// whose day has none, so an append never fails for a missing partition.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';

const DAY_MS = 86_400_000;

/** The UTC day (YYYY-MM-DD) an instant falls in. */
export const utcDay = (instant: string | number | Date): string => new Date(instant).toISOString().slice(0, 10);

/** Remembers which day partitions exist so the hot path asks PostgreSQL only for new days. */
export type PartitionCache = {
  /** Makes sure the days of `instants` have partitions; returns the days it had to ask PostgreSQL about. */
  ensure: (connection: CommonQueryMethods, instants: readonly string[]) => Promise<string[]>;
  forget: (day: string) => void;
};

/** One cache per pool (per database). */
export function createPartitionCache(): PartitionCache {
  const known = new Set<string>();
  return {
    async ensure(connection, instants) {
      const asked: string[] = [];
      for (const instant of instants) {
        const day = utcDay(instant);
        if (known.has(day)) continue;
        await connection.query(sql.unsafe`SELECT ensure_events_partition(${day}::date)`);
        known.add(day);
        asked.push(day);
      }
      return asked;
    },
    forget(day) {
      known.delete(day);
    },
  };
}

/** Creates partitions for `now`'s day and `daysAhead` more; returns the names ensured. */
export async function ensurePartitionsAhead(
  connection: CommonQueryMethods,
  now: Date,
  daysAhead: number,
): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i <= daysAhead; i += 1) {
    const day = utcDay(now.getTime() + i * DAY_MS);
    names.push(
      await connection.oneFirst(
        sql.type(z.object({ name: z.string() }))`SELECT ensure_events_partition(${day}::date) AS name`,
      ),
    );
  }
  return names;
}
