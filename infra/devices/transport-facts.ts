// What the console's device page says about how a device talks to devicetrail (issue #18):
// whether it holds an MQTT credential (since when), over which transport its last
// state-changing report came (the event's source), and when its current target version was
// delivered over each transport.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import type { TargetDelivery, Transport } from '../../domain/replay/source.ts';
import { targetDeliveries } from './target-deliveries.ts';

/** The stored facts; whether the device is connected now is the broker's to say. */
export type TransportFacts = {
  mqtt_credential_issued_at: string | null;
  /** The device's last `current_state.updated` (a report that changed its state); null when none. */
  last_report: { transport: Transport; at: string } | null;
  /** First deliveries of the given target version, per transport. */
  target_deliveries: TargetDelivery[];
};

const issuedRow = z.object({ issued_at: z.string() });
const reportRow = z.object({ source: z.string(), at: z.string() });

const iso = (column: string) =>
  sql.fragment`to_char(${sql.identifier([column])} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The facts for `uuid`, with the deliveries of `targetVersion` (none when 0). */
export async function transportFacts(
  connection: CommonQueryMethods,
  uuid: string,
  targetVersion: number,
): Promise<TransportFacts> {
  const issued = await connection.maybeOne(sql.type(issuedRow)`
    SELECT ${iso('issued_at')} AS issued_at FROM mqtt_credentials WHERE uuid = ${uuid}`);
  const report = await connection.maybeOne(sql.type(reportRow)`
    SELECT source, ${iso('timestamp')} AS at
      FROM events
     WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} AND event_type = 'current_state.updated'
     ORDER BY aggregate_version DESC
     LIMIT 1`);
  return {
    mqtt_credential_issued_at: issued?.issued_at ?? null,
    last_report: report === null ? null : { transport: report.source === 'mqtt' ? 'mqtt' : 'http', at: report.at },
    target_deliveries: targetVersion > 0 ? await targetDeliveries(connection, uuid, [targetVersion]) : [],
  };
}
