// The snapshotter: off the request path, folds each device stream that grew by at least
// `every` events since its last snapshot and writes a snapshot at every multiple of `every`
// (versions 500, 1000, …). After FOLD_VERSION changes, old snapshots no longer count and
// the next passes rebuild them. With several instances, one works at a time (advisory lock).
import { setImmediate } from 'node:timers';
import { type DatabasePool, type DatabasePoolConnection, sql } from 'slonik';
import { z } from 'zod';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import { baseOf, isoTimestamp } from './queries.ts';
import { FOLD_SLICE, initialBase, instantMs, isDeviceCaused, toDeviceEvent } from '../../domain/replay/history.ts';
import { createSnapshotStore, type NewSnapshot } from '../event-store/snapshots.ts';
import { storedEventRow } from '../../domain/recorded-event.ts';

const dueRow = z.object({ uuid: z.string(), head: z.number(), snapshot_version: z.number() });
const eventRow = storedEventRow.omit({
  aggregate_type: true,
  aggregate_id: true,
  global_position: true,
  transaction_id: true,
});
const lockRow = z.object({ locked: z.boolean() });
const nowRow = z.object({ now: z.string() });

const PAGE = 5_000;
const WRITE_BATCH = 50;
// streams.updated_at is the appending transaction's start; a slow transaction can commit
// after a pass that started later, so incremental passes look back this far, and every
// FULL_PASS_EVERY-th pass looks at every stream.
const LOOKBACK_MS = 10 * 60_000;
const FULL_PASS_EVERY = 12;

/** Options: snapshot every `every` events; poll every `intervalMs`; at most `batch` devices a pass. */
export type SnapshotterOptions = {
  every: number;
  intervalMs?: number;
  batch?: number;
  log?: (message: string) => void;
};

/** What one pass did. */
export type SnapshotPass = { devices: number; snapshots: number; skipped: boolean };

/** Creates the snapshotter for a pool; call `start()` to run it in the background. */
export function createSnapshotter(pool: DatabasePool, options: SnapshotterOptions) {
  const every = options.every;
  const log = options.log ?? (() => {});
  const failed = new Set<string>();
  let passes = 0;
  let checkedFrom: string | null = null;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let stopped = false;

  /** Folds one device from its newest snapshot to the last multiple of `every`; returns snapshots written. */
  async function snapshotDevice(connection: DatabasePoolConnection, uuid: string, head: number): Promise<number> {
    const store = createSnapshotStore(connection);
    const latest = await store.latest('device', uuid, FOLD_VERSION);
    const base = latest === null ? initialBase() : baseOf(latest);
    const upTo = Math.floor(head / every) * every;
    if (upTo <= base.version) return 0;
    let state = base.state;
    let lastEventAt = base.last_event_at;
    let lastSeen = base.last_seen_at;
    let after = base.version;
    let pending: NewSnapshot[] = [];
    let written = 0;
    while (after < upTo) {
      // by version only: a snapshot must hold exactly events 1..version, whatever their timestamps
      const page = await connection.any(sql.type(eventRow)`
        SELECT event_id, event_type, aggregate_version, data, jsonb_build_object('actor', metadata->'actor') AS metadata,
               ${isoTimestamp} AS "timestamp", source, hash
          FROM events
         WHERE aggregate_type = 'device' AND aggregate_id = ${uuid}
           AND aggregate_version > ${after} AND aggregate_version <= ${upTo}
         ORDER BY aggregate_version LIMIT ${PAGE}`);
      if (page.length === 0) break;
      for (const event of page) {
        if (event.aggregate_version !== after + 1) {
          throw new Error(`device ${uuid}: event version ${after + 1} is missing (found ${event.aggregate_version})`);
        }
        state = evolve(state, toDeviceEvent(event));
        after = event.aggregate_version;
        if (lastEventAt === null || instantMs(event.timestamp) > instantMs(lastEventAt)) lastEventAt = event.timestamp;
        if (isDeviceCaused(event) && (lastSeen === null || instantMs(event.timestamp) > instantMs(lastSeen))) {
          lastSeen = event.timestamp;
        }
        // a long stream is folded in slices, the event loop turning between them
        if (after % FOLD_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
        if (after % every === 0) {
          pending.push({
            aggregate_type: 'device',
            aggregate_id: uuid,
            version: after,
            fold_version: FOLD_VERSION,
            state,
            last_event_at: lastEventAt,
            last_event_hash: event.hash,
            last_seen_at: lastSeen,
          });
        }
      }
      if (pending.length >= WRITE_BATCH) {
        written += await store.write(pending);
        pending = [];
      }
    }
    written += await store.write(pending);
    return written;
  }

  /** One pass over the streams due a snapshot; skipped when another instance is running one. */
  async function runOnce(): Promise<SnapshotPass> {
    return pool.connect(async (connection) => {
      const { locked } = await connection.one(
        sql.type(lockRow)`SELECT pg_try_advisory_lock(hashtext('devicetrail.snapshotter')) AS locked`,
      );
      if (!locked) return { devices: 0, snapshots: 0, skipped: true };
      try {
        const startedAt = (await connection.one(sql.type(nowRow)`SELECT now() AS now`)).now;
        const full = checkedFrom === null || passes % FULL_PASS_EVERY === 0;
        passes += 1;
        const recent = full
          ? sql.fragment``
          : sql.fragment`AND s.updated_at >= ${
            new Date(instantMs(checkedFrom!) - LOOKBACK_MS).toISOString()
          }::timestamptz`;
        let devices = 0;
        let snapshots = 0;
        const visited = new Set(failed);
        for (;;) {
          const due = await connection.any(sql.type(dueRow)`
            SELECT s.aggregate_id AS uuid, s.version AS head, COALESCE(n.version, 0) AS snapshot_version
              FROM streams s
              LEFT JOIN LATERAL (
                SELECT max(version) AS version FROM snapshots
                 WHERE aggregate_type = 'device' AND aggregate_id = s.aggregate_id AND fold_version = ${FOLD_VERSION}) n ON true
             WHERE s.aggregate_type = 'device' AND s.version >= COALESCE(n.version, 0) + ${every} ${recent}
               AND NOT (s.aggregate_id = ANY(${sql.array([...visited], 'text')}))
             ORDER BY s.version - COALESCE(n.version, 0) DESC, s.aggregate_id
             LIMIT ${options.batch ?? 100}`);
          if (due.length === 0) break;
          for (const { uuid, head } of due) {
            visited.add(uuid);
            try {
              snapshots += await snapshotDevice(connection, uuid, head);
              devices += 1;
            } catch (error) {
              failed.add(uuid);
              log(`snapshotter: device ${uuid} skipped until restart: ${(error as Error).message}`);
            }
          }
          if (stopped) break;
        }
        checkedFrom = startedAt;
        if (snapshots > 0) log(`snapshotter: wrote ${snapshots} snapshot(s) for ${devices} device(s)`);
        return { devices, snapshots, skipped: false };
      } finally {
        await connection.query(sql.unsafe`SELECT pg_advisory_unlock(hashtext('devicetrail.snapshotter'))`);
      }
    });
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runOnce().catch((error: unknown) => log(`snapshotter: pass failed: ${(error as Error).message}`))
        .finally(() => {
          running = null;
          schedule();
        });
    }, options.intervalMs ?? 5_000);
    timer.unref();
  }

  return {
    runOnce,
    /** Runs passes every `intervalMs` until `stop()`. */
    start(): void {
      stopped = false;
      schedule();
    },
    /** Stops after the pass in progress, if any. */
    async stop(): Promise<void> {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      await running;
    },
  };
}

/** The snapshotter type. */
export type Snapshotter = ReturnType<typeof createSnapshotter>;
