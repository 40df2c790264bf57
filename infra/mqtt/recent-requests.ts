// The request ids of a device's newest events: how a report redelivered over MQTT after a
// crash is recognised (app/mqtt/report-handler.ts). Reads the newest `limit` versions of
// the stream through the events' (aggregate_type, aggregate_id, aggregate_version) index,
// within the last `days` day partitions.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';

const requestRow = z.object({ request_id: z.string().nullable() });

/** The `metadata.request_id`s of the device's newest `limit` events (none older than `days`). */
export async function recentRequestIds(
  connection: CommonQueryMethods,
  uuid: string,
  options: { limit?: number; days?: number } = {},
): Promise<string[]> {
  const limit = options.limit ?? 32;
  const rows = await connection.any(sql.type(requestRow)`
    SELECT e.metadata->>'request_id' AS request_id
      FROM streams s
      JOIN events e ON e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
       AND e.aggregate_version > s.version - ${limit}
     WHERE s.aggregate_type = 'device' AND s.aggregate_id = ${uuid}
       AND e."timestamp" > now() - make_interval(days => ${options.days ?? 7})`);
  return rows.flatMap((r) => (r.request_id === null ? [] : [r.request_id]));
}
