// The connectivity sweeper: writes device.connection_lost for every active device whose
// last contact (last_seen_at, or its registration if it never called) is older than
// CONNECTIVITY_TIMEOUT. Last contact is read-model data, not an event, so the decision
// locks the stream row and then the devices row (the order every writer uses) and reads it
// under the lock: a concurrent heartbeat waits and then sees the verdict (and restores the
// connection), another sweeper instance waits and then finds the device already lost.
import { sql } from 'slonik';
import { z } from 'zod';
import { decide } from '../../domain/device/decide.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import type { DeviceState } from '../../domain/device/state.ts';
import { type AggregateAdapter, handleCommand } from '../event-store/command-handler.ts';
import { deviceAdapter } from './device-store.ts';
import { createDeviceSweeper, type DeviceSweep, type DeviceSweeperOptions, type Sweeper } from './sweeper.ts';

const contactRow = z.object({ last_contact_at: z.string() });

/** How the connectivity sweeper runs. */
export type ConnectivitySweeperOptions = DeviceSweeperOptions;

/** Creates the connectivity sweeper. */
export function createConnectivitySweeper(options: ConnectivitySweeperOptions): Sweeper {
  const { pool, timeoutMs } = options;

  async function sweepDevice(uuid: string, { now, store, metadata }: DeviceSweep): Promise<number> {
    let lastContactAt: string | null = null;
    const lockingAdapter: AggregateAdapter<DeviceState, DeviceEvent> = {
      ...deviceAdapter,
      async load(connection, id) {
        const loaded = await deviceAdapter.load(connection, id, true);
        lastContactAt = await connection.maybeOneFirst(sql.type(contactRow)`
          SELECT COALESCE(last_seen_at, registered_at) AS last_contact_at FROM devices WHERE uuid = ${id} FOR UPDATE`);
        return loaded;
      },
    };
    const result = await handleCommand(
      pool,
      store,
      lockingAdapter,
      uuid,
      (state) =>
        lastContactAt === null
          ? []
          : decide({ type: 'mark_connection_lost', now, last_contact_at: lastContactAt, timeout_ms: timeoutMs }, state),
      { metadata, source: 'system' },
    );
    return result.events.length;
  }

  // active, connected devices not heard from since the cutoff
  const silent = (cutoff: string) =>
    sql.fragment`is_active AND NOT connection_lost AND COALESCE(last_seen_at, registered_at) <= ${cutoff}::timestamptz`;
  return createDeviceSweeper('connectivity-sweeper', options, silent, sweepDevice);
}
