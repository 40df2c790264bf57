// The device aggregate's persistence: its inline read model (`devices`) and the adapter
// that lets the command handler load and project it.
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { evolve } from '../domain/device/evolve.ts';
import type { DeviceEvent } from '../domain/device/events.ts';
import { initialState, type DeviceState, type RegisteredDevice } from '../domain/device/state.ts';
import type { AggregateAdapter } from './command-handler.ts';

const loadRow = z.object({ version: z.number(), last_hash: z.string(), state: z.unknown() });

/** The device adapter for handleCommand. */
export const deviceAdapter: AggregateAdapter<DeviceState, DeviceEvent> = {
  aggregateType: 'device',
  initialState,
  evolve,
  async load(connection, uuid, lock) {
    const row = await connection.maybeOne(sql.type(loadRow)`
      SELECT s.version, s.last_hash, d.state
        FROM streams s LEFT JOIN devices d ON d.uuid = s.aggregate_id
       WHERE s.aggregate_type = 'device' AND s.aggregate_id = ${uuid}
       ${lock ? sql.fragment`FOR UPDATE OF s` : sql.fragment``}`);
    if (row === null || row.state === null) return null;
    return { state: row.state as DeviceState, head: { version: row.version, last_hash: row.last_hash } };
  },
  async save(transaction, uuid, state, stored) {
    if (state.status !== 'registered') return;
    const last = stored[stored.length - 1];
    const seenAt = last !== undefined && last.metadata['actor'] !== undefined && (last.metadata['actor'] as { type?: string }).type === 'device' ? last.timestamp : null;
    await upsertDevice(transaction, uuid, state, seenAt);
  },
};

/** Writes the devices row for a state; last_seen_at only moves forward. */
export async function upsertDevice(connection: CommonQueryMethods, uuid: string, state: RegisteredDevice, seenAt: string | null): Promise<void> {
  await connection.query(sql.unsafe`
    INSERT INTO devices (uuid, device_name, device_type, fleet_id, is_active, in_sync, drift_since,
                         target_version, state, version, registered_at, updated_at, last_seen_at)
    VALUES (${uuid}, ${state.device_name}, ${state.device_type}, ${state.fleet_id}, ${state.is_active},
            ${state.drift.in_sync}, ${state.drift_since}::timestamptz, ${state.target?.version ?? 0},
            ${sql.jsonb(state as never)}, ${state.version}, ${state.registered_at}::timestamptz,
            ${state.updated_at}::timestamptz, ${seenAt}::timestamptz)
    ON CONFLICT (uuid) DO UPDATE SET
      device_name = EXCLUDED.device_name, device_type = EXCLUDED.device_type, fleet_id = EXCLUDED.fleet_id,
      is_active = EXCLUDED.is_active, in_sync = EXCLUDED.in_sync, drift_since = EXCLUDED.drift_since,
      target_version = EXCLUDED.target_version, state = EXCLUDED.state, version = EXCLUDED.version,
      updated_at = EXCLUDED.updated_at,
      last_seen_at = GREATEST(devices.last_seen_at, EXCLUDED.last_seen_at)`);
}

/** Records a heartbeat (a target-state poll): not an event, only the read model. */
export async function touchLastSeen(connection: CommonQueryMethods, uuid: string, at: string): Promise<void> {
  await connection.query(sql.unsafe`
    UPDATE devices SET last_seen_at = GREATEST(last_seen_at, ${at}::timestamptz) WHERE uuid = ${uuid}`);
}
