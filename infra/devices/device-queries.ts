// Read-side queries on the devices read model and a device's events.
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import type { DeviceState } from '../../domain/device/state.ts';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';

const deviceRow = z.object({
  uuid: z.string(),
  device_name: z.string(),
  device_type: z.string(),
  fleet_id: z.string(),
  is_active: z.boolean(),
  in_sync: z.boolean(),
  drift_since: z.string().nullable(),
  target_version: z.number(),
  state: z.unknown(),
  version: z.number(),
  registered_at: z.string(),
  updated_at: z.string(),
  last_seen_at: z.string().nullable(),
});
export type DeviceRow = Omit<z.infer<typeof deviceRow>, 'state'> & { state: DeviceState };

/** Filters for the device list. */
export type DeviceFilter = { fleet_id?: string; in_sync?: boolean; is_active?: boolean; limit: number; offset: number };

/** Creates the device read queries for a pool. */
export function createDeviceQueries(pool: DatabasePool) {
  return {
    async get(uuid: string): Promise<DeviceRow | null> {
      return (await pool.maybeOne(sql.type(deviceRow)`SELECT * FROM devices WHERE uuid = ${uuid}`)) as DeviceRow | null;
    },
    async list(filter: DeviceFilter): Promise<{ devices: DeviceRow[]; total: number }> {
      const conditions = [sql.fragment`TRUE`];
      if (filter.fleet_id !== undefined) conditions.push(sql.fragment`fleet_id = ${filter.fleet_id}`);
      if (filter.in_sync !== undefined) conditions.push(sql.fragment`in_sync = ${filter.in_sync}`);
      if (filter.is_active !== undefined) conditions.push(sql.fragment`is_active = ${filter.is_active}`);
      const where = sql.join(conditions, sql.fragment` AND `);
      const devices = await pool.any(sql.type(deviceRow)`
        SELECT * FROM devices WHERE ${where} ORDER BY registered_at, uuid LIMIT ${filter.limit} OFFSET ${filter.offset}`);
      const total = await pool.oneFirst(
        sql.type(z.object({ total: z.number() }))`SELECT count(*)::int AS total FROM devices WHERE ${where}`,
      );
      return { devices: devices as DeviceRow[], total };
    },
    /** A device's events in version order, filtered by type and time, paginated by version. */
    async events(
      uuid: string,
      filter: { types?: string[]; since?: string; until?: string; afterVersion: number; limit: number },
    ): Promise<readonly StoredEvent[]> {
      const conditions = [
        sql.fragment`aggregate_type = 'device'`,
        sql.fragment`aggregate_id = ${uuid}`,
        sql.fragment`aggregate_version > ${filter.afterVersion}`,
      ];
      if (filter.types !== undefined && filter.types.length > 0) {
        conditions.push(sql.fragment`event_type = ANY(${sql.array(filter.types, 'text')})`);
      }
      if (filter.since !== undefined) conditions.push(sql.fragment`"timestamp" >= ${filter.since}::timestamptz`);
      if (filter.until !== undefined) conditions.push(sql.fragment`"timestamp" <= ${filter.until}::timestamptz`);
      return pool.any(sql.type(storedEventRow)`
        SELECT event_id, event_type, aggregate_type, aggregate_id, aggregate_version, global_position,
               transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash
          FROM events WHERE ${sql.join(conditions, sql.fragment` AND `)}
         ORDER BY aggregate_version LIMIT ${filter.limit}`);
    },
  };
}
