// The device aggregate's persistence: its inline read model (`devices`), written by one upsert
// for the command handler and the batch writer alike, and the adapter that lets the command
// handler load and project it.
import { type CommonQueryMethods, type FragmentSqlToken, type IdentifierSqlToken, sql } from 'slonik';
import { z } from 'zod';
import { causationIndexes } from '../../domain/device/decide.ts';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import { type DeviceState, initialState, type RegisteredDevice } from '../../domain/device/state.ts';
import type { AggregateAdapter } from '../event-store/command-handler.ts';
import { refoldDevice } from './refold.ts';
import { newStreamHead, type PreparedEvent, streamHeadRow } from '../event-store/event-store.ts';

/** A device stream's head with its read-model state, as a writer loads it (state null: no devices row). */
export const deviceLoadRow = streamHeadRow.extend({ state: z.unknown(), fold_version: z.number().nullable() });

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
    const row = await connection.maybeOne(sql.type(deviceLoadRow)`
      SELECT s.version, s.last_hash, s.last_timestamp, d.state, d.fold_version
        FROM streams s LEFT JOIN devices d ON d.uuid = s.aggregate_id
       WHERE s.aggregate_type = 'device' AND s.aggregate_id = ${uuid}`);
    // no stream yet, as of this statement: version 0 from the same snapshot (a separate head
    // read could see a concurrent registration commit in between and pair it with no state)
    if (row === null) return { state: initialState(), head: newStreamHead() };
    if (row.state === null) return null;
    // a row folded by an older evolve is refolded from its events (FOLD_VERSION changed)
    const state = row.fold_version === FOLD_VERSION
      ? row.state as DeviceState
      : await refoldDevice(connection, uuid, row.version);
    return { state, head: { version: row.version, last_hash: row.last_hash, last_timestamp: row.last_timestamp } };
  },
  async save(transaction, uuid, state, stored) {
    if (state.status !== 'registered') return;
    await upsertDevice(transaction, uuid, state, seenAt(stored));
  },
  causes: causationIndexes,
};

/** When an append saw its device: its last event's time when the device itself caused it, else null. */
export function seenAt(events: readonly PreparedEvent[]): string | null {
  const last = events[events.length - 1];
  const actor = last?.metadata['actor'] as { type?: string } | undefined;
  return last !== undefined && actor?.type === 'device' ? last.timestamp : null;
}

/**
 * A devices row as JSON, for upsertDevices. `stateJson` is JSON.stringify(state), passed by a
 * caller that has made it already (the batch writer keeps it for its cache).
 */
export function deviceRowJson(
  uuid: string,
  state: RegisteredDevice,
  seenAt: string | null,
  stateJson: string = JSON.stringify(state),
): string {
  const fields = JSON.stringify({
    uuid,
    device_name: state.device_name,
    device_type: state.device_type,
    fleet_id: state.fleet_id,
    is_active: state.is_active,
    in_sync: state.drift.in_sync,
    drift_since: state.drift_since,
    target_version: state.target?.version ?? 0,
    version: state.version,
    registered_at: state.registered_at,
    updated_at: state.updated_at,
    seen_at: seenAt,
  });
  return `${fields.slice(0, -1)},"state":${stateJson}}`;
}

/**
 * The one write of the devices read model: upserts rows made by deviceRowJson; last_seen_at
 * only moves forward. With `appended` (an append statement's streams, see appendStatement),
 * only the devices whose stream that append moved.
 */
export function upsertDevices(rows: readonly string[], appended?: IdentifierSqlToken): FragmentSqlToken {
  const only = appended === undefined
    ? sql.fragment``
    : sql.fragment`WHERE i.uuid IN (SELECT aggregate_id FROM ${appended} WHERE aggregate_type = 'device')`;
  return sql.fragment`
    INSERT INTO devices (uuid, device_name, device_type, fleet_id, is_active, in_sync, drift_since,
                         target_version, state, version, registered_at, updated_at, last_seen_at, fold_version)
    SELECT i.uuid, i.device_name, i.device_type, i.fleet_id, i.is_active, i.in_sync, i.drift_since,
           i.target_version, i.state, i.version, i.registered_at, i.updated_at, i.seen_at, ${FOLD_VERSION}::int4
      FROM jsonb_to_recordset(${`[${rows.join(',')}]`}::jsonb)
        AS i(uuid text, device_name text, device_type text, fleet_id text, is_active bool, in_sync bool,
             drift_since timestamptz, target_version int4, version int8, registered_at timestamptz,
             updated_at timestamptz, seen_at timestamptz, state jsonb)
      ${only}
    ON CONFLICT (uuid) DO UPDATE SET
      device_name = EXCLUDED.device_name, device_type = EXCLUDED.device_type, fleet_id = EXCLUDED.fleet_id,
      is_active = EXCLUDED.is_active, in_sync = EXCLUDED.in_sync, drift_since = EXCLUDED.drift_since,
      target_version = EXCLUDED.target_version, state = EXCLUDED.state, version = EXCLUDED.version,
      updated_at = EXCLUDED.updated_at, fold_version = EXCLUDED.fold_version,
      last_seen_at = GREATEST(devices.last_seen_at, EXCLUDED.last_seen_at)`;
}

/** Writes the devices row for a state (upsertDevices, one row). */
export async function upsertDevice(
  connection: CommonQueryMethods,
  uuid: string,
  state: RegisteredDevice,
  seenAt: string | null,
): Promise<void> {
  await connection.query(sql.unsafe`${upsertDevices([deviceRowJson(uuid, state, seenAt)])}`);
}

/** Records a heartbeat (a target-state poll): not an event, only the read model. */
export async function touchLastSeen(connection: CommonQueryMethods, uuid: string, at: string): Promise<void> {
  await connection.query(sql.unsafe`
    UPDATE devices SET last_seen_at = GREATEST(last_seen_at, ${at}::timestamptz) WHERE uuid = ${uuid}`);
}
