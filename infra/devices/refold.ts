// Refolds a device's state from its events, for read-model rows written by another
// FOLD_VERSION (evolve changed meaning since they were saved).
import { type CommonQueryMethods, sql } from 'slonik';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { type DeviceState, initialState } from '../../domain/device/state.ts';
import { storedEventRow } from '../../domain/recorded-event.ts';

const eventRow = storedEventRow.pick({ event_type: true, data: true, timestamp: true });

/** The device's state folded from events 1..`upToVersion` with today's evolve. */
export async function refoldDevice(
  connection: CommonQueryMethods,
  uuid: string,
  upToVersion: number,
): Promise<DeviceState> {
  const rows = await connection.any(sql.type(eventRow)`
    SELECT event_type, data, "timestamp" FROM events
     WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} AND aggregate_version <= ${upToVersion}
     ORDER BY aggregate_version`);
  return fold(
    rows.map((r) => parseDeviceEvent({ type: r.event_type, data: r.data, timestamp: r.timestamp })),
    initialState(),
  );
}
