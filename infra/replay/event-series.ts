// Events of one type per time bucket over a window: the analytics page's "over time" charts.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';

const bucketRow = z.object({ bucket: z.number(), n: z.number() });

/** Counts of `eventType` in `buckets` equal slices of (from, to], oldest first, empty slices included. */
export async function eventSeries(
  connection: CommonQueryMethods,
  eventType: string,
  window: { from: string; to: string },
  buckets: number,
): Promise<{ from: string; to: string; count: number }[]> {
  const fromMs = Date.parse(window.from);
  const size = Math.max(1, (Date.parse(window.to) - fromMs) / buckets);
  const rows = await connection.any(sql.type(bucketRow)`
    SELECT least(${buckets - 1}, floor((extract(epoch FROM "timestamp") * 1000 - ${fromMs}) / ${size}))::int AS bucket,
           count(*)::int AS n
      FROM events
     WHERE event_type = ${eventType} AND "timestamp" > ${window.from}::timestamptz AND "timestamp" <= ${window.to}::timestamptz
     GROUP BY 1`);
  const counts = new Map(rows.map((r) => [r.bucket, r.n]));
  return Array.from({ length: buckets }, (_, i) => ({
    from: new Date(fromMs + i * size).toISOString(),
    to: new Date(fromMs + (i + 1) * size).toISOString(),
    count: counts.get(i) ?? 0,
  }));
}
