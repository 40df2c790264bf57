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

/** Filters for the device list; `search` matches a uuid prefix or part of the name (any case). */
export type DeviceFilter = {
  fleet_id?: string;
  in_sync?: boolean;
  is_active?: boolean;
  connection_lost?: boolean;
  search?: string;
  limit: number;
  offset: number;
};

/** Devices in total, drifting, disabled and lost (connectivity), in one fleet or all. */
export type DeviceCounts = { total: number; drifting: number; disabled: number; lost: number };

const countsRow = z.object({ total: z.number(), drifting: z.number(), disabled: z.number(), lost: z.number() });

/** `%`, `_` and `\` taken literally in a LIKE pattern. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function listConditions(filter: Omit<DeviceFilter, 'limit' | 'offset'>) {
  const conditions = [sql.fragment`TRUE`];
  if (filter.fleet_id !== undefined) conditions.push(sql.fragment`fleet_id = ${filter.fleet_id}`);
  if (filter.in_sync !== undefined) conditions.push(sql.fragment`in_sync = ${filter.in_sync}`);
  if (filter.is_active !== undefined) conditions.push(sql.fragment`is_active = ${filter.is_active}`);
  if (filter.connection_lost !== undefined) conditions.push(sql.fragment`connection_lost = ${filter.connection_lost}`);
  if (filter.search !== undefined && filter.search !== '') {
    const pattern = likeLiteral(filter.search.toLowerCase());
    conditions.push(sql.fragment`(uuid LIKE ${`${pattern}%`} OR device_name ILIKE ${`%${pattern}%`})`);
  }
  return sql.join(conditions, sql.fragment` AND `);
}

/** Creates the device read queries for a pool. */
export function createDeviceQueries(pool: DatabasePool) {
  return {
    async get(uuid: string): Promise<DeviceRow | null> {
      return (await pool.maybeOne(sql.type(deviceRow)`SELECT * FROM devices WHERE uuid = ${uuid}`)) as DeviceRow | null;
    },
    async list(filter: DeviceFilter): Promise<{ devices: DeviceRow[]; total: number }> {
      const where = listConditions(filter);
      const devices = await pool.any(sql.type(deviceRow)`
        SELECT * FROM devices WHERE ${where} ORDER BY registered_at, uuid LIMIT ${filter.limit} OFFSET ${filter.offset}`);
      const total = await pool.oneFirst(
        sql.type(z.object({ total: z.number() }))`SELECT count(*)::int AS total FROM devices WHERE ${where}`,
      );
      return { devices: devices as DeviceRow[], total };
    },
    /** Devices in total, drifting, disabled and lost, in one scan. */
    async counts(filter: { fleet_id?: string } = {}): Promise<DeviceCounts> {
      return pool.one(sql.type(countsRow)`
        SELECT count(*)::int AS total, (count(*) FILTER (WHERE NOT in_sync))::int AS drifting,
               (count(*) FILTER (WHERE NOT is_active))::int AS disabled,
               (count(*) FILTER (WHERE connection_lost))::int AS lost
          FROM devices WHERE ${listConditions(filter)}`);
    },
    /** The fleets that have devices, by name. */
    async fleets(): Promise<readonly string[]> {
      return pool.anyFirst(
        sql.type(z.object({ fleet_id: z.string() }))`SELECT DISTINCT fleet_id FROM devices ORDER BY fleet_id`,
      );
    },
    /**
     * A device's events, filtered by type and time, a page at a time: in version order after
     * `afterVersion`, or (`newestFirst`) newest first below `beforeVersion`.
     */
    async events(
      uuid: string,
      filter: {
        types?: string[];
        since?: string;
        until?: string;
        afterVersion: number;
        beforeVersion?: number;
        newestFirst?: boolean;
        limit: number;
      },
    ): Promise<readonly StoredEvent[]> {
      const conditions = [
        sql.fragment`aggregate_type = 'device'`,
        sql.fragment`aggregate_id = ${uuid}`,
        sql.fragment`aggregate_version > ${filter.afterVersion}`,
      ];
      if (filter.beforeVersion !== undefined) {
        conditions.push(sql.fragment`aggregate_version < ${filter.beforeVersion}`);
      }
      if (filter.types !== undefined && filter.types.length > 0) {
        conditions.push(sql.fragment`event_type = ANY(${sql.array(filter.types, 'text')})`);
      }
      if (filter.since !== undefined) conditions.push(sql.fragment`"timestamp" >= ${filter.since}::timestamptz`);
      if (filter.until !== undefined) conditions.push(sql.fragment`"timestamp" <= ${filter.until}::timestamptz`);
      return pool.any(sql.type(storedEventRow)`
        SELECT event_id, event_type, aggregate_type, aggregate_id, aggregate_version, global_position,
               transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash
          FROM events WHERE ${sql.join(conditions, sql.fragment` AND `)}
         ORDER BY aggregate_version ${filter.newestFirst === true ? sql.fragment`DESC` : sql.fragment`ASC`}
         LIMIT ${filter.limit}`);
    },
  };
}
