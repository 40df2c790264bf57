// The request ids of a device's newest events: how a report redelivered over MQTT after a
// crash is recognised (app/mqtt/report-handler.ts). Reads the newest `limit` versions of
// the stream through the events' (aggregate_type, aggregate_id, aggregate_version) index,
// within the last `days` day partitions.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';

const requestRow = z.object({ uuid: z.string(), request_id: z.string().nullable() });

/**
 * The `metadata.request_id`s of each device's newest `limit` events (none older than `days`),
 * for many devices in one statement (a fleet reconnecting after a restart sends thousands of
 * first reports at once; one lookup each queued them for seconds, issue #19). Every uuid asked
 * for is in the answer, with an empty list when its device has none.
 */
export async function recentRequestIds(
  connection: CommonQueryMethods,
  uuids: readonly string[],
  options: { limit?: number; days?: number } = {},
): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>(uuids.map((uuid) => [uuid, []]));
  if (uuids.length === 0) return found;
  const limit = options.limit ?? 32;
  const rows = await connection.any(sql.type(requestRow)`
    SELECT s.aggregate_id AS uuid, e.metadata->>'request_id' AS request_id
      FROM ${sql.unnest(uuids.map((uuid) => [uuid]), ['text'])} AS u(uuid)
      JOIN streams s ON s.aggregate_type = 'device' AND s.aggregate_id = u.uuid
      JOIN events e ON e.aggregate_type = s.aggregate_type AND e.aggregate_id = s.aggregate_id
       AND e.aggregate_version > s.version - ${limit}
     WHERE e."timestamp" > now() - make_interval(days => ${options.days ?? 7})`);
  for (const row of rows) if (row.request_id !== null) found.get(row.uuid)?.push(row.request_id);
  return found;
}
