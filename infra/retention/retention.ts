// Retention: drops whole day partitions older than the horizon (RETENTION_DAYS before
// today's UTC midnight), never single rows. Before any partition goes, every aggregate with
// events before the horizon gets a horizon snapshot (its state folded from events 1..V, V
// its last version before the horizon, with the chain hash of V) and a retention anchor, so
// read models, present state and replay after the horizon stay right and `verify` still
// checks the chain that remains. With an archive directory, each partition is written to
// gzip NDJSON and read back intact before it is dropped. One instance works at a time.
import { setImmediate } from 'node:timers';
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { STORED_BYTES } from '../postgres/pool.ts';
import { z } from 'zod';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { ProvisioningKeyEvent } from '../../domain/provisioning-key/events.ts';
import {
  evolveProvisioningKey,
  initialProvisioningKeyState,
  type ProvisioningKeyState,
} from '../../domain/provisioning-key/decider.ts';
import { archivePaths, verifyArchive, writeArchive } from './archive.ts';
import { eventHash, GENESIS_HASH } from '../event-store/event-hash.ts';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';
import { type EventPartition, listPartitions, retentionHorizon } from './partition-maintenance.ts';
import { FOLD_SLICE, initialBase, instantMs, isDeviceCaused, toDeviceEvent } from '../../domain/replay/history.ts';
import { advanceHorizon, readAnchors, type RetentionAnchor, writeAnchors } from '../event-store/retention-horizon.ts';
import {
  createSnapshotStore,
  type NewSnapshot,
  type Snapshot,
  snapshotIntact,
  snapshotRow,
  TIMESTAMP_SLACK_MS,
} from '../event-store/snapshots.ts';
import type { DeviceState } from '../../domain/device/state.ts';
import { sessionTransaction } from '../postgres/transaction.ts';

/** Fold version of provisioning key snapshots (evolveProvisioningKey has had one meaning so far). */
export const PROVISIONING_KEY_FOLD_VERSION = 1;

const PAGE = 5_000;
const BATCH = 100;

const lockRow = z.object({ locked: z.boolean() });
const dueRow = z.object({ aggregate_type: z.string(), aggregate_id: z.string(), version: z.number() });
const countRow = z.object({ rows: z.number() });

const eventColumns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

/** Options: days kept (0 keeps everything), where archives go, the clock, a logger. */
export type RetentionOptions = {
  retentionDays: number;
  archiveDir?: string | undefined;
  clock: () => Date;
  log?: ((message: string) => void) | undefined;
  /** How long a drop waits for the lock on `events` before giving up until the next run. */
  lockTimeoutMs?: number | undefined;
};

/** A dropped partition. */
export type DroppedPartition = { name: string; day: string; rows: number; bytes: number; archive: string | null };

/** What one run did. */
export type RetentionRun = {
  skipped: 'disabled' | 'locked' | null;
  horizon: string | null;
  snapshots: number;
  anchors: number;
  dropped: DroppedPartition[];
  /** Partitions past the horizon that stay until a later run, and why. */
  kept: { name: string; reason: string }[];
};

/** Retention cannot go on without losing something it must keep (a broken chain, a missing snapshot). */
export class RetentionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionError';
  }
}

/** Partitions that lie entirely before the horizon. */
export const partitionsBefore = (partitions: readonly EventPartition[], horizon: string): EventPartition[] =>
  partitions.filter((p) => instantMs(p.to) <= instantMs(horizon));

/** Runs retention once. Skips when disabled or when another instance holds the retention lock. */
export async function runRetention(pool: DatabasePool, options: RetentionOptions): Promise<RetentionRun> {
  const empty: RetentionRun = { skipped: null, horizon: null, snapshots: 0, anchors: 0, dropped: [], kept: [] };
  if (options.retentionDays <= 0) return { ...empty, skipped: 'disabled' };
  return pool.connect(async (connection) => {
    const { locked } = await connection.one(
      sql.type(lockRow)`SELECT pg_try_advisory_lock(hashtext('devicetrail.retention')) AS locked`,
    );
    if (!locked) return { ...empty, skipped: 'locked' };
    try {
      return await retain(connection, options);
    } finally {
      await connection.query(sql.unsafe`SELECT pg_advisory_unlock(hashtext('devicetrail.retention'))`);
    }
  });
}

async function retain(connection: CommonQueryMethods, options: RetentionOptions): Promise<RetentionRun> {
  const log = options.log ?? (() => {});
  const horizon = retentionHorizon(options.clock(), options.retentionDays);
  const due = partitionsBefore(await listPartitions(connection), horizon);
  const run: RetentionRun = { skipped: null, horizon, snapshots: 0, anchors: 0, dropped: [], kept: [] };
  if (due.length === 0) return run;
  const written = await snapshotAtHorizon(connection, horizon);
  run.snapshots = written.snapshots;
  run.anchors = written.anchors;
  // from here on, instants before the horizon are refused, whether or not every partition drops
  await advanceHorizon(connection, horizon, options.retentionDays);
  // deliveries of targets set before the horizon go with the targets' events (migration 016)
  await connection.query(sql.unsafe`DELETE FROM target_deliveries WHERE delivered_at < ${horizon}::timestamptz`);
  for (const partition of due) {
    try {
      run.dropped.push(await dropPartition(connection, partition, horizon, options));
      log(`retention: dropped ${partition.name} (${run.dropped[run.dropped.length - 1]!.rows} events)`);
    } catch (error) {
      run.kept.push({ name: partition.name, reason: (error as Error).message });
      log(`retention: kept ${partition.name} until the next run: ${(error as Error).message}`);
      break; // oldest first: a later day never goes while an earlier one stays
    }
  }
  return run;
}

/** Archives (when asked), checks and drops one partition, recording it in dropped_partitions. */
async function dropPartition(
  connection: CommonQueryMethods,
  partition: EventPartition,
  horizon: string,
  options: RetentionOptions,
): Promise<DroppedPartition> {
  let archive: { file: string; sha256: string; rows: number } | null = null;
  if (options.archiveDir !== undefined) {
    await writeArchive(connection, partition, options.archiveDir, options.clock);
    const paths = archivePaths(options.archiveDir, partition.name);
    const check = await verifyArchive(paths.manifest);
    if (check.problems.length > 0 || check.manifest === null) {
      throw new Error(`archive not intact: ${check.problems.join('; ')}`);
    }
    archive = { file: paths.file, sha256: check.manifest.sha256, rows: check.rows };
  }
  const table = sql.identifier([partition.name]);
  return sessionTransaction(connection, async (tx) => {
    await tx.query(sql.unsafe`SELECT set_config('lock_timeout', ${`${options.lockTimeoutMs ?? 5000}ms`}, true)`);
    const { rows } = await tx.one(sql.type(countRow)`SELECT count(*)::bigint AS rows FROM ${table}`);
    if (archive !== null && rows !== archive.rows) {
      throw new Error(`the partition holds ${rows} events but its archive ${archive.rows}`);
    }
    await tx.query(sql.unsafe`ALTER TABLE events DETACH PARTITION ${table}`);
    await tx.query(sql.unsafe`DROP TABLE ${table}`);
    await tx.query(sql.unsafe`
      INSERT INTO dropped_partitions (name, day, rows, bytes, horizon, archive_path, archive_sha256)
      VALUES (${partition.name}, ${partition.day}::date, ${rows}, ${partition.bytes}, ${horizon}::timestamptz,
              ${archive?.file ?? null}, ${archive?.sha256 ?? null})`);
    return { name: partition.name, day: partition.day, rows, bytes: partition.bytes, archive: archive?.file ?? null };
  });
}

/** A folded aggregate at version V: its snapshot (null for types without a fold here) and anchor. */
type HorizonPoint = { snapshot: NewSnapshot | null; anchor: RetentionAnchor };

/**
 * Writes a horizon snapshot and anchor for every aggregate with events before the horizon
 * that has none at its last version before it yet.
 */
async function snapshotAtHorizon(
  connection: CommonQueryMethods,
  horizon: string,
): Promise<{ snapshots: number; anchors: number }> {
  const due = await connection.any(sql.type(dueRow)`
    SELECT aggregate_type, aggregate_id, max(aggregate_version) AS version FROM events
     WHERE "timestamp" < ${horizon}::timestamptz GROUP BY 1, 2 ORDER BY 1, 2`);
  let snapshots = 0;
  let anchors = 0;
  for (let i = 0; i < due.length; i += BATCH) {
    const batch = due.slice(i, i + BATCH);
    const points: HorizonPoint[] = [];
    for (const type of [...new Set(batch.map((d) => d.aggregate_type))]) {
      const ofType = batch.filter((d) => d.aggregate_type === type);
      const existing = await readAnchors(connection, type, ofType.map((d) => d.aggregate_id));
      for (const { aggregate_id: id, version } of ofType) {
        const previous = (existing.get(id) ?? []).at(-1) ?? null;
        if (previous !== null && previous.version >= version) continue; // done by an earlier, interrupted run
        points.push(await foldToVersion(connection, type, id, previous, version, horizon));
      }
    }
    const states = points.flatMap((p) => (p.snapshot === null ? [] : [p.snapshot]));
    await sessionTransaction(connection, async (tx) => {
      // a periodic snapshot may already sit at that version: same fold, same state, kept
      await createSnapshotStore(tx).write(states);
      await writeAnchors(tx, points.map((p) => p.anchor));
    });
    // counted once committed: a transaction run again does not count its snapshots twice
    snapshots += states.length;
    anchors += points.length;
  }
  return { snapshots, anchors };
}

/** The snapshot an earlier retention run wrote at `version` (the base of the next fold). */
async function snapshotAt(
  connection: CommonQueryMethods,
  type: string,
  id: string,
  foldVersion: number,
  version: number,
): Promise<Snapshot | null> {
  const row = await connection.maybeOne(sql.type(snapshotRow)`
    SELECT aggregate_type, aggregate_id, version, fold_version, state, last_event_at, last_event_hash, last_seen_at, hash
      FROM snapshots WHERE aggregate_type = ${type} AND aggregate_id = ${id} AND fold_version = ${foldVersion} AND version = ${version}`);
  return row !== null && snapshotIntact(row) ? row : null;
}

/** How to fold one aggregate type: its fold version, initial state and evolve over stored rows. */
type Fold = { foldVersion: number; initial: () => unknown; apply: (state: unknown, event: StoredEvent) => unknown };

const folds: Record<string, Fold> = {
  device: {
    foldVersion: FOLD_VERSION,
    initial: () => initialBase().state,
    apply: (state, event) => evolve(state as DeviceState, toDeviceEvent(event)),
  },
  provisioning_key: {
    foldVersion: PROVISIONING_KEY_FOLD_VERSION,
    initial: initialProvisioningKeyState,
    apply: (state, event) =>
      evolveProvisioningKey(
        state as ProvisioningKeyState,
        { type: event.event_type, data: event.data, timestamp: event.timestamp } as ProvisioningKeyEvent,
      ),
  },
};

/**
 * Folds an aggregate from its previous anchor (and that anchor's snapshot) to `version`,
 * checking versions and the hash chain on the way: retention never drops a broken chain.
 */
async function foldToVersion(
  connection: CommonQueryMethods,
  type: string,
  id: string,
  previous: RetentionAnchor | null,
  version: number,
  horizon: string,
): Promise<HorizonPoint> {
  const fold = folds[type];
  let state: unknown = fold?.initial() ?? null;
  let lastSeen: string | null = null;
  if (previous !== null && fold !== undefined) {
    const snapshot = await snapshotAt(connection, type, id, fold.foldVersion, previous.version);
    if (snapshot === null) {
      throw new RetentionError(
        `${type} ${id}: no intact horizon snapshot of fold version ${fold.foldVersion} at version ${previous.version}; the events before it are gone, so its state cannot be carried forward`,
      );
    }
    state = snapshot.state;
    lastSeen = snapshot.last_seen_at;
  }
  let after = previous?.version ?? 0;
  let hash = previous?.hash ?? GENESIS_HASH;
  let lastEventAt = previous?.last_event_at ?? null;
  const upper = new Date(instantMs(horizon) + TIMESTAMP_SLACK_MS).toISOString();
  while (after < version) {
    const read = (stored: boolean) =>
      connection.any(sql.type(storedEventRow)`
        ${stored ? STORED_BYTES : sql.fragment``} SELECT ${eventColumns} FROM events
         WHERE aggregate_type = ${type} AND aggregate_id = ${id}
           AND aggregate_version > ${after} AND aggregate_version <= ${version} AND "timestamp" < ${upper}::timestamptz
         ORDER BY aggregate_version LIMIT ${PAGE}`);
    // the chain is checked on the bytes as stored; the fold (the horizon snapshot) takes the
    // events as every read shows them: an event stored before secrets were hashed (issue #15)
    // shows its secrets as markers, which the snapshot must hold, never the values
    const page: readonly StoredEvent[] = await read(true);
    const shown: readonly StoredEvent[] = fold === undefined ? page : await read(false);
    if (page.length === 0) {
      throw new RetentionError(`${type} ${id}: version ${after + 1} is missing; run \`npm run replay -- verify\``);
    }
    for (const [i, event] of page.entries()) {
      if (event.aggregate_version !== after + 1) {
        throw new RetentionError(`${type} ${id}: version ${after + 1} is missing; run \`npm run replay -- verify\``);
      }
      if (eventHash(hash, event) !== event.hash) {
        throw new RetentionError(
          `${type} ${id}: event ${event.event_id} (version ${event.aggregate_version}) does not match its hash; retention keeps tampered history: run \`npm run replay -- verify\``,
        );
      }
      if (fold !== undefined) {
        const view = shown[i];
        if (view === undefined || view.event_id !== event.event_id) {
          throw new RetentionError(`${type} ${id}: the events moved while they were read; the next run tries again`);
        }
        state = fold.apply(state, view);
      }
      if (lastEventAt === null || instantMs(event.timestamp) > instantMs(lastEventAt)) lastEventAt = event.timestamp;
      if (isDeviceCaused(event) && (lastSeen === null || instantMs(event.timestamp) > instantMs(lastSeen))) {
        lastSeen = event.timestamp;
      }
      after = event.aggregate_version;
      hash = event.hash;
      // a long stream is folded in slices, the event loop turning between them
      if (after % FOLD_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }
  const anchor: RetentionAnchor = {
    aggregate_type: type,
    aggregate_id: id,
    version,
    hash,
    last_event_at: lastEventAt!,
    horizon,
  };
  const snapshot: NewSnapshot | null = fold === undefined ? null : {
    aggregate_type: type,
    aggregate_id: id,
    version,
    fold_version: fold.foldVersion,
    state,
    last_event_at: lastEventAt!,
    last_event_hash: hash,
    last_seen_at: type === 'device' ? lastSeen : null,
  };
  return { snapshot, anchor };
}
