// Replay from PostgreSQL: the newest valid snapshot, then only the events after it, with
// both timestamp bounds in the SQL so the planner prunes the day partitions outside them.
import { sql, type DatabasePool, type QuerySqlToken } from 'slonik';
import { z } from 'zod';
import { FOLD_VERSION } from '../domain/device/evolve.ts';
import type { DeviceState } from '../domain/device/state.ts';
import { storedEventRow, type StoredEvent } from './event-store.ts';
import { createFolder, foldFrom, initialBase, instantMs, type ReplayBase, type ReplayEvent, type StateAt } from './replay-history.ts';
import { ReplayError, type DeviceSummary, type EventWindow, type ReplaySource } from './replay-source.ts';
import { assertAfterHorizon, readHorizon } from './retention-horizon.ts';
import { createSnapshotStore, TIMESTAMP_SLACK_MS, type Snapshot } from './snapshots.ts';

const replayEventRow = z.object({
  event_id: z.string(),
  event_type: z.string(),
  aggregate_version: z.number(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()),
  timestamp: z.string(),
  source: z.string(),
});
const fleetEventRow = replayEventRow.extend({ aggregate_id: z.string() });
const summaryRow = z.object({ uuid: z.string(), device_name: z.string(), device_type: z.string(), fleet_id: z.string(), registered_at: z.string() });
const countRow = z.object({ uuid: z.string(), count: z.number(), first: z.string(), last: z.string() });
const driftingRow = summaryRow.extend({ state: z.unknown(), drift_since: z.string().nullable() });
const planRow = z.object({ 'QUERY PLAN': z.string() });

const PAGE = 5_000;
const FLEET_CHUNK = 1_000;

/** An event's instant as the ISO text replay uses, formatted by PostgreSQL (parsing it in JS costs ~2 µs a row). */
export const isoTimestamp = sql.fragment`to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

// replay needs only the actor of an event's metadata (for "last seen" and "caused by")
const replayColumns = sql.fragment`event_id, event_type, aggregate_version, data,
  jsonb_build_object('actor', metadata->'actor') AS metadata, ${isoTimestamp} AS "timestamp", source`;
const exportColumns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

const minus = (iso: string, ms: number) => new Date(instantMs(iso) - ms).toISOString();

/** The base a snapshot row gives. */
export const baseOf = (snapshot: Snapshot): ReplayBase => ({
  state: snapshot.state as DeviceState,
  version: snapshot.version,
  last_event_at: snapshot.last_event_at,
  last_seen_at: snapshot.last_seen_at,
});

/** The WHERE clause of "this device's events after `afterVersion`, between two instants". */
function eventsAfter(uuid: string, afterVersion: number, lower: string | null, upper: string | null) {
  return sql.fragment`aggregate_type = 'device' AND aggregate_id = ${uuid} AND aggregate_version > ${afterVersion}
     ${upper === null ? sql.fragment`` : sql.fragment`AND "timestamp" <= ${upper}::timestamptz`}
     ${lower === null ? sql.fragment`` : sql.fragment`AND "timestamp" >= ${lower}::timestamptz`}`;
}

/** Options: `snapshots: false` folds from the first event (tests compare both paths). */
export type ReplayQueryOptions = { clock?: () => Date; snapshots?: boolean };

/** The database as a replay source. */
export function createReplayQueries(pool: DatabasePool, options: ReplayQueryOptions = {}) {
  const snapshots = createSnapshotStore(pool);
  const useSnapshots = options.snapshots ?? true;
  const clock = options.clock ?? (() => new Date());

  async function summary(uuid: string): Promise<DeviceSummary | null> {
    return pool.maybeOne(sql.type(summaryRow)`
      SELECT uuid, device_name, device_type, fleet_id, registered_at FROM devices WHERE uuid = ${uuid}`);
  }

  const page = (uuid: string, after: number, lower: string | null, upper: string) => pool.any(sql.type(replayEventRow)`
    SELECT ${replayColumns} FROM events WHERE ${eventsAfter(uuid, after, lower, upper)}
     ORDER BY aggregate_version LIMIT ${PAGE}`);

  /**
   * Hands the events after a version, up to `upper`, from `lower` on, to `consume` page by page;
   * the next page is already being read while one is consumed, so PostgreSQL and the fold overlap.
   */
  async function eachPage(uuid: string, afterVersion: number, lower: string | null, upper: string, consume: (events: readonly ReplayEvent[]) => void): Promise<void> {
    let next = page(uuid, afterVersion, lower, upper);
    for (;;) {
      const current = await next;
      const full = current.length === PAGE;
      if (full) next = page(uuid, current[current.length - 1]!.aggregate_version, lower, upper);
      try {
        consume(current);
      } catch (error) {
        next.catch(() => undefined); // the prefetch is abandoned; its failure must not go unhandled
        throw error;
      }
      if (!full) return;
    }
  }

  /** Events after a version, up to `upper`, from `lower` on, in version order. */
  async function readAfter(uuid: string, afterVersion: number, lower: string | null, upper: string): Promise<ReplayEvent[]> {
    const events: ReplayEvent[] = [];
    await eachPage(uuid, afterVersion, lower, upper, (current) => { events.push(...current); });
    return events;
  }

  /** The base valid at `at` and the lower time bound for the events after it. */
  async function baseAt(uuid: string, at: string | undefined): Promise<{ base: ReplayBase; lower: string | null }> {
    // retention (issue #6): nothing before the horizon; after it, its horizon snapshot is the base
    const horizon = at === undefined ? (await readHorizon(pool))?.horizon ?? null : await assertAfterHorizon(pool, at);
    const snapshot = useSnapshots && at !== undefined ? await snapshots.latest('device', uuid, FOLD_VERSION, at) : null;
    if (snapshot !== null) return { base: baseOf(snapshot), lower: minus(snapshot.last_event_at, TIMESTAMP_SLACK_MS) };
    // no snapshot: the device's first event is its registration, so that bounds the scan
    const device = await summary(uuid);
    if (horizon !== null && device !== null && instantMs(device.registered_at) < instantMs(horizon)) {
      throw new ReplayError('before_retention_horizon',
        `device ${uuid} has history before the retention horizon ${horizon}, and no horizon snapshot of fold version ${FOLD_VERSION} to start from: ask for an instant at or after ${horizon}`,
        { uuid, horizon, fold_version: FOLD_VERSION });
    }
    return { base: initialBase(), lower: device === null ? null : minus(device.registered_at, TIMESTAMP_SLACK_MS) };
  }

  const source: ReplaySource = {
    description: 'the database',
    now: () => clock().toISOString(),
    device: summary,

    async devices(filter = {}) {
      return [...await pool.any(sql.type(summaryRow)`
        SELECT uuid, device_name, device_type, fleet_id, registered_at FROM devices
         ${filter.fleet === undefined ? sql.fragment`` : sql.fragment`WHERE fleet_id = ${filter.fleet}`}
         ORDER BY registered_at, uuid`)];
    },

    async stateAt(uuid, at): Promise<StateAt> {
      const { base, lower } = await baseAt(uuid, at);
      const folder = createFolder(base, at);
      await eachPage(uuid, base.version, lower, at, folder.add);
      return folder.result();
    },

    async window(uuid, range): Promise<EventWindow> {
      const { base, lower } = await baseAt(uuid, range.since);
      return { base, events: await readAfter(uuid, base.version, lower, range.until) };
    },

    async *exportEvents(uuid, range) {
      let after = 0;
      for (;;) {
        const conditions = [sql.fragment`aggregate_type = 'device'`, sql.fragment`aggregate_id = ${uuid}`, sql.fragment`aggregate_version > ${after}`];
        if (range.since !== undefined) conditions.push(sql.fragment`"timestamp" >= ${range.since}::timestamptz`);
        if (range.until !== undefined) conditions.push(sql.fragment`"timestamp" <= ${range.until}::timestamptz`);
        const page: readonly StoredEvent[] = await pool.any(sql.type(storedEventRow)`
          SELECT ${exportColumns} FROM events WHERE ${sql.join(conditions, sql.fragment` AND `)}
           ORDER BY aggregate_version LIMIT ${PAGE}`);
        yield* page;
        if (page.length < PAGE) return;
        after = page[page.length - 1]!.aggregate_version;
      }
    },

    async fleetAt(at, fleetOptions = {}) {
      const horizon = await assertAfterHorizon(pool, at);
      const devices = (await pool.any(sql.type(summaryRow)`
        SELECT uuid, device_name, device_type, fleet_id, registered_at FROM devices
         WHERE registered_at <= ${at}::timestamptz
         ${fleetOptions.fleet === undefined ? sql.fragment`` : sql.fragment`AND fleet_id = ${fleetOptions.fleet}`}
         ORDER BY registered_at, uuid`));
      const results: { summary: DeviceSummary; result: StateAt }[] = [];
      fleetOptions.onProgress?.(0, devices.length);
      const load = async (chunk: readonly DeviceSummary[]) => {
        const ids = chunk.map((d) => d.uuid);
        const snaps = useSnapshots ? await snapshots.latestMany('device', ids, FOLD_VERSION, at) : new Map<string, Snapshot>();
        const unsnapshotted = horizon === null ? undefined : chunk.find((d) => !snaps.has(d.uuid) && instantMs(d.registered_at) < instantMs(horizon));
        if (unsnapshotted !== undefined && horizon !== null) {
          throw new ReplayError('before_retention_horizon',
            `device ${unsnapshotted.uuid} has history before the retention horizon ${horizon}, and no horizon snapshot of fold version ${FOLD_VERSION} to start from`,
            { uuid: unsnapshotted.uuid, horizon, fold_version: FOLD_VERSION });
        }
        const bases = new Map(chunk.map((d) => {
          const s = snaps.get(d.uuid);
          return [d.uuid, s === undefined ? initialBase() : baseOf(s)] as const;
        }));
        const lower = minus(chunk.reduce((min, d) => {
          const from = snaps.get(d.uuid)?.last_event_at ?? d.registered_at;
          return instantMs(from) < instantMs(min) ? from : min;
        }, at), TIMESTAMP_SLACK_MS);
        const rows = await pool.any(sql.type(fleetEventRow)`
          SELECT e.aggregate_id, e.event_id, e.event_type, e.aggregate_version, e.data,
                 jsonb_build_object('actor', e.metadata->'actor') AS metadata, ${isoTimestamp} AS "timestamp", e.source
            FROM events e
            JOIN ${sql.unnest(chunk.map((d) => [d.uuid, bases.get(d.uuid)!.version]), ['text', 'int8'])} AS b(id, version)
              ON e.aggregate_id = b.id AND e.aggregate_version > b.version
           WHERE e.aggregate_type = 'device' AND e.aggregate_id = ANY(${sql.array(ids, 'text')})
             AND e."timestamp" <= ${at}::timestamptz AND e."timestamp" >= ${lower}::timestamptz
           ORDER BY e.aggregate_id, e.aggregate_version`);
        return { chunk, bases, rows };
      };
      const chunks: DeviceSummary[][] = [];
      for (let i = 0; i < devices.length; i += FLEET_CHUNK) chunks.push(devices.slice(i, i + FLEET_CHUNK));
      // while one chunk is folded here, PostgreSQL already reads the next
      let next = chunks.length > 0 ? load(chunks[0]!) : null;
      for (let c = 0; c < chunks.length; c += 1) {
        const { chunk, bases, rows } = await next!;
        next = c + 1 < chunks.length ? load(chunks[c + 1]!) : null;
        const byDevice = new Map<string, ReplayEvent[]>();
        for (const row of rows) {
          const list = byDevice.get(row.aggregate_id);
          if (list === undefined) byDevice.set(row.aggregate_id, [row]);
          else list.push(row);
        }
        try {
          for (const device of chunk) {
            results.push({ summary: device, result: foldFrom(bases.get(device.uuid)!, byDevice.get(device.uuid) ?? [], at) });
          }
        } catch (error) {
          next?.catch(() => undefined); // the prefetch is abandoned; its failure must not go unhandled
          throw error;
        }
        fleetOptions.onProgress?.(results.length, devices.length);
      }
      return results;
    },

    async eventCounts(eventType, from, to) {
      return [...await pool.any(sql.type(countRow)`
        SELECT aggregate_id AS uuid, count(*)::int AS count, min("timestamp") AS first, max("timestamp") AS last
          FROM events
         WHERE aggregate_type = 'device' AND event_type = ${eventType}
           AND "timestamp" > ${from}::timestamptz AND "timestamp" <= ${to}::timestamptz
         GROUP BY aggregate_id ORDER BY count(*) DESC, aggregate_id`)];
    },

    horizon: async () => (await readHorizon(pool))?.horizon ?? null,

    async driftingNow() {
      // the inline read model is the fold of every event, kept in the append's transaction
      const rows = await pool.any(sql.type(driftingRow)`
        SELECT uuid, device_name, device_type, fleet_id, registered_at, state, drift_since
          FROM devices WHERE NOT in_sync ORDER BY drift_since NULLS LAST, uuid`);
      return rows.map(({ state, drift_since, ...summaryFields }) => ({ summary: summaryFields, state: state as DeviceState, drift_since }));
    },
  };

  return {
    ...source,

    /** EXPLAIN of the events query `stateAt(uuid, at)` runs: shows which partitions are read. */
    async explainStateAt(uuid: string, at: string): Promise<string> {
      const { base, lower } = await baseAt(uuid, at);
      const query: QuerySqlToken = sql.type(planRow)`EXPLAIN (COSTS OFF)
        SELECT ${replayColumns} FROM events WHERE ${eventsAfter(uuid, base.version, lower, at)}
         ORDER BY aggregate_version LIMIT ${PAGE}`;
      const rows = await pool.any(query);
      return rows.map((r) => (r as z.infer<typeof planRow>)['QUERY PLAN']).join('\n');
    },
  };
}

/** The database replay source with its extras. */
export type ReplayQueries = ReturnType<typeof createReplayQueries>;
