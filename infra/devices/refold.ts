// Refolds a device's state from its events, for read-model rows written by another
// FOLD_VERSION (evolve changed meaning since they were saved).
import { setImmediate } from 'node:timers';
import { type CommonQueryMethods, sql } from 'slonik';
import { evolve } from '../../domain/device/evolve.ts';
import { FOLD_SLICE } from '../../domain/replay/history.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { type DeviceState, initialState } from '../../domain/device/state.ts';
import { storedEventRow } from '../../domain/recorded-event.ts';

const eventRow = storedEventRow.pick({ event_type: true, data: true, timestamp: true });

/**
 * The device's state folded from events 1..`upToVersion` with today's evolve, a turn of the
 * event loop after every FOLD_SLICE events (it runs on a request's path).
 */
export async function refoldDevice(
  connection: CommonQueryMethods,
  uuid: string,
  upToVersion: number,
): Promise<DeviceState> {
  const rows = await connection.any(sql.type(eventRow)`
    SELECT event_type, data, "timestamp" FROM events
     WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} AND aggregate_version <= ${upToVersion}
     ORDER BY aggregate_version`);
  let state = initialState();
  for (const [i, r] of rows.entries()) {
    state = evolve(state, parseDeviceEvent({ type: r.event_type, data: r.data, timestamp: r.timestamp }));
    if ((i + 1) % FOLD_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return state;
}
