// When each target version reached its device, and over which transport (migration 016): the
// first delivery per device, version and transport, written once (later ones change nothing).
// Read by the lifecycle analytics (delivery and convergence times per transport) and the
// console's device page.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import type { TargetDelivery, Transport } from '../../domain/replay/source.ts';

const deliveryRow = z.object({
  aggregate_id: z.string(),
  target_version: z.number(),
  transport: z.enum(['http', 'mqtt']),
  delivered_at: z.string(),
});

/** Records that `version` of the device's target reached it over `transport` at `at` (the first time only). */
export async function recordTargetDelivery(
  connection: CommonQueryMethods,
  delivery: { uuid: string; version: number; transport: Transport; at: string },
): Promise<void> {
  await connection.query(sql.unsafe`
    INSERT INTO target_deliveries (aggregate_id, target_version, transport, delivered_at)
    VALUES (${delivery.uuid}, ${delivery.version}, ${delivery.transport}, ${delivery.at}::timestamptz)
    ON CONFLICT DO NOTHING`);
}

/** The deliveries of the given target versions of a device (any transport), oldest first. */
export async function targetDeliveries(
  connection: CommonQueryMethods,
  uuid: string,
  versions: readonly number[],
): Promise<TargetDelivery[]> {
  if (versions.length === 0) return [];
  const rows = await connection.any(sql.type(deliveryRow)`
    SELECT aggregate_id, target_version, transport,
           to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS delivered_at
      FROM target_deliveries
     WHERE aggregate_id = ${uuid} AND target_version = ANY(${sql.array(versions, 'int4')})
     ORDER BY delivered_at, transport`);
  return rows.map((r) => ({
    uuid: r.aggregate_id,
    target_version: r.target_version,
    transport: r.transport,
    delivered_at: r.delivered_at,
  }));
}
