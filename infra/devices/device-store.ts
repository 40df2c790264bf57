// The device aggregate's persistence: its inline read model (`devices`) and the adapter
// that lets the command handler load and project it.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { causationIndexes } from '../../domain/device/decide.ts';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import { type DeviceState, initialState, type RegisteredDevice } from '../../domain/device/state.ts';
import type { AggregateAdapter } from '../event-store/command-handler.ts';
import { refoldDevice } from './refold.ts';
import { GENESIS_HASH } from '../event-store/event-hash.ts';

const loadRow = z.object({
  version: z.number(),
  last_hash: z.string(),
  state: z.unknown(),
  fold_version: z.number().nullable(),
});

/** The device adapter for handleCommand. */
export const deviceAdapter: AggregateAdapter<DeviceState, DeviceEvent> = {
  aggregateType: 'device',
  initialState,
  evolve,
  async load(connection, uuid, lock) {
    // Lock in a statement of its own, then read: a join that waited on FOR UPDATE OF s would
    // re-fetch the new streams row but keep the devices row of its old snapshot (READ
    // COMMITTED), pairing a fresh head with a stale state.
    if (lock) {
      await connection.query(
        sql.unsafe`SELECT 1 FROM streams WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} FOR UPDATE`,
      );
    }
    const row = await connection.maybeOne(sql.type(loadRow)`
      SELECT s.version, s.last_hash, d.state, d.fold_version
        FROM streams s LEFT JOIN devices d ON d.uuid = s.aggregate_id
       WHERE s.aggregate_type = 'device' AND s.aggregate_id = ${uuid}`);
    // no stream yet, as of this statement: version 0 from the same snapshot (a separate head
    // read could see a concurrent registration commit in between and pair it with no state)
    if (row === null) return { state: initialState(), head: { version: 0, last_hash: GENESIS_HASH } };
    if (row.state === null) return null;
    // a row folded by an older evolve is refolded from its events (FOLD_VERSION changed)
    const state = row.fold_version === FOLD_VERSION
      ? row.state as DeviceState
      : await refoldDevice(connection, uuid, row.version);
    return { state, head: { version: row.version, last_hash: row.last_hash } };
  },
  async save(transaction, uuid, state, stored) {
    if (state.status !== 'registered') return;
    const last = stored[stored.length - 1];
    const seenAt = last !== undefined && last.metadata['actor'] !== undefined &&
        (last.metadata['actor'] as { type?: string }).type === 'device'
      ? last.timestamp
      : null;
    await upsertDevice(transaction, uuid, state, seenAt);
  },
  causes: causationIndexes,
};

/** Writes the devices row for a state; last_seen_at only moves forward. */
export async function upsertDevice(
  connection: CommonQueryMethods,
  uuid: string,
  state: RegisteredDevice,
  seenAt: string | null,
): Promise<void> {
  await connection.query(sql.unsafe`
    INSERT INTO devices (uuid, device_name, device_type, fleet_id, is_active, in_sync, drift_since,
                         target_version, state, version, registered_at, updated_at, last_seen_at, fold_version)
    VALUES (${uuid}, ${state.device_name}, ${state.device_type}, ${state.fleet_id}, ${state.is_active},
            ${state.drift.in_sync}, ${state.drift_since}::timestamptz, ${state.target?.version ?? 0},
            ${sql.jsonb(state as never)}, ${state.version}, ${state.registered_at}::timestamptz,
            ${state.updated_at}::timestamptz, ${seenAt}::timestamptz, ${FOLD_VERSION})
    ON CONFLICT (uuid) DO UPDATE SET
      device_name = EXCLUDED.device_name, device_type = EXCLUDED.device_type, fleet_id = EXCLUDED.fleet_id,
      is_active = EXCLUDED.is_active, in_sync = EXCLUDED.in_sync, drift_since = EXCLUDED.drift_since,
      target_version = EXCLUDED.target_version, state = EXCLUDED.state, version = EXCLUDED.version,
      updated_at = EXCLUDED.updated_at, fold_version = EXCLUDED.fold_version,
      last_seen_at = GREATEST(devices.last_seen_at, EXCLUDED.last_seen_at)`);
}

/** Records a heartbeat (a target-state poll): not an event, only the read model. */
export async function touchLastSeen(connection: CommonQueryMethods, uuid: string, at: string): Promise<void> {
  await connection.query(sql.unsafe`
    UPDATE devices SET last_seen_at = GREATEST(last_seen_at, ${at}::timestamptz) WHERE uuid = ${uuid}`);
}
