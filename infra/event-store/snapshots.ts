// Snapshots of folded aggregate state (table `snapshots`, migration 003): find the newest
// valid one for an instant, write new ones. Generic over aggregate types: callers pass the
// fold version their `evolve` carries and cast `state` to their state type.
import { createHash } from 'node:crypto';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { canonicalJson } from './event-hash.ts';

/**
 * How far (ms) an event's timestamp may lie before an earlier-versioned event's of the same
 * aggregate in a log written before migration 011 (since then, appends stamp events in time
 * order: none lies before the one before it). Timestamps were the API clock's `now`, read
 * before the append transaction, so two concurrent requests for one device could commit in
 * the other order; the gap is bounded by a request's lifetime (statement timeouts × retries),
 * far below an hour. Replay reads events after a snapshot from `last_event_at - slack` on, so
 * PostgreSQL can prune partitions; an older one would be left out (see docs/REPLAY.md).
 */
export const TIMESTAMP_SLACK_MS = 3_600_000;

/** A `snapshots` row. */
export const snapshotRow = z.object({
  aggregate_type: z.string(),
  aggregate_id: z.string(),
  version: z.number(),
  fold_version: z.number(),
  state: z.unknown(),
  last_event_at: z.string(),
  last_event_hash: z.string(),
  last_seen_at: z.string().nullable(),
  hash: z.string(),
});

/** A stored snapshot; `state` is the aggregate's folded state as JSON. */
export type Snapshot = z.infer<typeof snapshotRow>;

/** A snapshot to write (its integrity hash is computed here). */
export type NewSnapshot = Omit<Snapshot, 'hash'>;

const snapshotColumns = sql.fragment`aggregate_type, aggregate_id, version, fold_version, state,
  last_event_at, last_event_hash, last_seen_at, hash`;

/** sha-256 over the chain hash of the last folded event and the canonical state. */
export function snapshotHash(lastEventHash: string, state: unknown): string {
  return createHash('sha256').update(lastEventHash).update('\n').update(canonicalJson(state)).digest('hex');
}

/** True when a snapshot row still matches its hash (a hand-edited or corrupted row does not). */
export const snapshotIntact = (snapshot: Snapshot): boolean =>
  snapshot.hash === snapshotHash(snapshot.last_event_hash, snapshot.state);

/** Snapshot queries on one connection or pool. */
export function createSnapshotStore(connection: CommonQueryMethods) {
  return {
    /**
     * The newest intact snapshot of `foldVersion` whose events all happened at or before `at`
     * (`at` omitted: the newest of all). Rows that fail their hash are skipped.
     */
    async latest(
      aggregateType: string,
      aggregateId: string,
      foldVersion: number,
      at?: string,
    ): Promise<Snapshot | null> {
      let below = Number.MAX_SAFE_INTEGER;
      for (;;) {
        const row = await connection.maybeOne(sql.type(snapshotRow)`
          SELECT ${snapshotColumns} FROM snapshots
           WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId}
             AND fold_version = ${foldVersion} AND version < ${below}
             ${at === undefined ? sql.fragment`` : sql.fragment`AND last_event_at <= ${at}::timestamptz`}
           ORDER BY version DESC LIMIT 1`);
        if (row === null || snapshotIntact(row)) return row;
        below = row.version;
      }
    },

    /** For many aggregates at once: each one's newest intact snapshot valid at `at`. */
    async latestMany(
      aggregateType: string,
      aggregateIds: readonly string[],
      foldVersion: number,
      at: string,
    ): Promise<Map<string, Snapshot>> {
      const rows = await connection.any(sql.type(snapshotRow)`
        SELECT ${snapshotColumns} FROM snapshots
         WHERE aggregate_type = ${aggregateType} AND aggregate_id = ANY(${sql.array(aggregateIds, 'text')})
           AND fold_version = ${foldVersion} AND last_event_at <= ${at}::timestamptz
         ORDER BY aggregate_id, version DESC`);
      const result = new Map<string, Snapshot>();
      for (const row of rows) {
        if (!result.has(row.aggregate_id) && snapshotIntact(row)) result.set(row.aggregate_id, row);
      }
      return result;
    },

    /** Writes snapshots; one that already exists (same aggregate, fold version and version) is kept. */
    async write(snapshots: readonly NewSnapshot[]): Promise<number> {
      if (snapshots.length === 0) return 0;
      const result = await connection.query(sql.unsafe`
        INSERT INTO snapshots (aggregate_type, aggregate_id, version, fold_version, state, last_event_at, last_event_hash, last_seen_at, hash)
        SELECT * FROM ${
        sql.unnest(
          snapshots.map((
            s,
          ) => [
            s.aggregate_type,
            s.aggregate_id,
            s.version,
            s.fold_version,
            JSON.stringify(s.state),
            s.last_event_at,
            s.last_event_hash,
            s.last_seen_at,
            snapshotHash(s.last_event_hash, s.state),
          ]),
          ['text', 'text', 'int8', 'int4', 'jsonb', 'timestamptz', 'text', 'timestamptz', 'text'],
        )
      }
        ON CONFLICT DO NOTHING`);
      return result.rowCount;
    },

    /** Versions and instants of an aggregate's snapshots of one fold version, oldest first. */
    async list(
      aggregateType: string,
      aggregateId: string,
      foldVersion: number,
    ): Promise<readonly { version: number; last_event_at: string }[]> {
      return connection.any(sql.type(z.object({ version: z.number(), last_event_at: z.string() }))`
        SELECT version, last_event_at FROM snapshots
         WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId} AND fold_version = ${foldVersion}
         ORDER BY version`);
    },
  };
}

/** The snapshot store type. */
export type SnapshotStore = ReturnType<typeof createSnapshotStore>;
