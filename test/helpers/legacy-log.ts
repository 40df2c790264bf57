// A device's log as the event store wrote it before migration 011: each event stamped with the
// instant its command was decided, so some lie before the event of the version before them
// (two requests for one device that read the clock in one order and committed in the other).
// The event store stamps in order now, so such a log is written here directly, as that store
// did (versions numbered, hashes chained over the timestamps as stored) and as migration 011
// leaves it (the stream head's last_timestamp is the latest of them).
import { type DatabasePool, sql } from 'slonik';
import { evolve } from '../../domain/device/evolve.ts';
import { type DeviceState, initialState } from '../../domain/device/state.ts';
import { toDeviceEvent } from '../../domain/replay/history.ts';
import type { GeneratedEvent } from '../../bench/generate-history.ts';
import { upsertDevice } from '../../infra/devices/device-store.ts';
import { type EventStore, type PreparedEvent, prepareEvents } from '../../infra/event-store/event-store.ts';

/** Appends `events` (one device's, in order) with the timestamps they were generated with. */
export async function appendAsBefore011(
  pool: DatabasePool,
  store: EventStore,
  uuid: string,
  events: readonly GeneratedEvent[],
  batch = 500,
): Promise<void> {
  let head = await store.head(pool, 'device', uuid);
  let state: DeviceState = initialState();
  for (let i = 0; i < events.length; i += batch) {
    const rows: PreparedEvent[] = [];
    for (const e of events.slice(i, i + batch)) {
      // one at a time, from a head without a timestamp: nothing is raised
      const [row] = prepareEvents('device', uuid, { ...head, last_timestamp: null }, [{
        event_type: e.type,
        data: e.data as Record<string, unknown>,
        timestamp: e.timestamp,
        source: 'api',
        metadata: { actor: e.actor, endpoint: 'generated', request_id: null, ip_address: null, user_agent: null },
      }]);
      rows.push(row!);
      head = { version: row!.aggregate_version, last_hash: row!.hash, last_timestamp: null };
      state = evolve(state, toDeviceEvent(row!));
    }
    const latest = new Date(Math.max(...rows.map((r) => Date.parse(r.timestamp)))).toISOString();
    await pool.transaction(async (tx) => {
      await store.partitions.ensure(tx, rows.map((r) => r.timestamp));
      await tx.query(sql.unsafe`
        INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
        SELECT e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.aggregate_version, e.data, e.metadata, e."timestamp", e.source, e.hash
          FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
            AS e(event_id uuid, event_type text, aggregate_type text, aggregate_id text, aggregate_version int8,
                 data jsonb, metadata jsonb, "timestamp" timestamptz, source text, hash text)`);
      await tx.query(sql.unsafe`
        INSERT INTO streams (aggregate_type, aggregate_id, version, last_hash, last_timestamp)
        VALUES ('device', ${uuid}, ${head.version}, ${head.last_hash}, ${latest}::timestamptz)
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
          version = EXCLUDED.version, last_hash = EXCLUDED.last_hash,
          last_timestamp = GREATEST(streams.last_timestamp, EXCLUDED.last_timestamp)`);
      if (state.status === 'registered') await upsertDevice(tx, uuid, state, null);
    });
  }
}
