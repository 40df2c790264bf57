// Group commit for device commands on the ingest hot path (state reports). Concurrent
// requests for different devices are decided together and written by ONE autocommit
// statement: compare-and-set on every stream, insert every event, update every read-model
// row. PostgreSQL then commits (and fsyncs) many events at once instead of one per request.
// A device whose stream moved on (another writer, another instance) is retried alone
// through handleCommand, so one conflict never fails the rest of the batch.
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { causationIndexes } from '../domain/device/decide.ts';
import { evolve, FOLD_VERSION } from '../domain/device/evolve.ts';
import type { DeviceEvent } from '../domain/device/events.ts';
import type { DeviceState, RegisteredDevice } from '../domain/device/state.ts';
import { handleCommand, toNewEvents, type CommandResult } from './command-handler.ts';
import { deviceAdapter } from './device-store.ts';
import { prepareEvents, type EventMetadata, type EventStore, type PreparedEvent, type StoredEvent, type StreamHead } from './event-store.ts';

/** One device command waiting for its batch. */
type Job = {
  uuid: string;
  decide: (state: DeviceState) => DeviceEvent[];
  context: { metadata: EventMetadata; source: string };
  resolve: (result: CommandResult<DeviceState>) => void;
  reject: (error: unknown) => void;
};

type Loaded = { state: DeviceState; head: StreamHead };
type Decided = { job: Job; loaded: Loaded; state: RegisteredDevice; rows: PreparedEvent[] };

const loadRow = z.object({ uuid: z.string(), version: z.number(), last_hash: z.string(), state: z.unknown(), fold_version: z.number().nullable() });
const insertedRow = z.object({ event_id: z.string(), aggregate_id: z.string(), global_position: z.number(), transaction_id: z.string() });

/** Options; defaults suit the API process. */
export type BatchWriterOptions = {
  /** Most commands in one statement. */
  maxBatch?: number;
  /** Batches written at the same time (each on its own connection). */
  maxInFlight?: number;
  /** Devices whose last committed state is kept in memory (saves reading it back). */
  cacheSize?: number;
};

/** The writer: `submit` resolves when the command's events are committed. */
export type DeviceBatchWriter = {
  submit: (uuid: string, decide: Job['decide'], context: Job['context']) => Promise<CommandResult<DeviceState>>;
  /** Forgets a device's cached state (it is also dropped on any version conflict). */
  forget: (uuid: string) => void;
};

/** Creates a batch writer over a pool and the event store (for partitions and retries). */
export function createDeviceBatchWriter(pool: DatabasePool, store: EventStore, options: BatchWriterOptions = {}): DeviceBatchWriter {
  const maxBatch = options.maxBatch ?? 256;
  const maxInFlight = options.maxInFlight ?? 3;
  const cacheSize = options.cacheSize ?? 2_000;
  const queue: Job[] = [];
  const busy = new Set<string>();
  const cache = new Map<string, Loaded>();
  let inFlight = 0;
  let scheduled = false;

  const remember = (uuid: string, loaded: Loaded) => {
    cache.delete(uuid);
    if (cacheSize === 0) return;
    if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
    cache.set(uuid, loaded);
  };

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    // let every request parsed in this turn of the event loop join the batch
    setImmediate(() => {
      scheduled = false;
      while (inFlight < maxInFlight && queue.length > 0) {
        const batch = takeBatch();
        if (batch.length === 0) break;
        inFlight += 1;
        void run(batch).finally(() => {
          inFlight -= 1;
          for (const job of batch) busy.delete(job.uuid);
          if (queue.length > 0) schedule();
        });
      }
    });
  }

  /** Up to maxBatch jobs, one per device, none for a device already being written. */
  function takeBatch(): Job[] {
    const batch: Job[] = [];
    const rest: Job[] = [];
    for (const job of queue) {
      if (batch.length < maxBatch && !busy.has(job.uuid)) {
        busy.add(job.uuid);
        batch.push(job);
      } else rest.push(job);
    }
    queue.length = 0;
    queue.push(...rest);
    return batch;
  }

  /** Writes one command alone, the slow, locking way; its result refreshes the cache. */
  async function alone(job: Job): Promise<void> {
    cache.delete(job.uuid);
    try {
      const result = await handleCommand(pool, store, deviceAdapter, job.uuid, job.decide, job.context);
      remember(job.uuid, { state: result.state, head: result.head });
      job.resolve(result);
    } catch (error) {
      job.reject(error);
    }
  }

  /**
   * Every device's head, read fresh for each batch (another writer or instance may have
   * moved it: an admin's disable must refuse the very next report). The state itself comes
   * from memory when the cached copy is of that same version, else from the read model.
   */
  async function load(uuids: string[]): Promise<Map<string, Loaded | 'refold'>> {
    const found = new Map<string, Loaded | 'refold'>();
    const rows = await pool.any(sql.type(loadRow)`
      SELECT s.aggregate_id AS uuid, s.version, s.last_hash, d.fold_version,
             CASE WHEN s.version = c.cached_version THEN NULL ELSE d.state END AS state
        FROM ${sql.unnest(uuids.map((uuid) => [uuid, cache.get(uuid)?.head.version ?? -1]), ['text', 'int8'])} AS c(uuid, cached_version)
        JOIN streams s ON s.aggregate_type = 'device' AND s.aggregate_id = c.uuid
        JOIN devices d ON d.uuid = c.uuid`);
    for (const row of rows) {
      const cached = cache.get(row.uuid);
      if (row.state === null && cached !== undefined && cached.head.version === row.version) found.set(row.uuid, cached);
      else if (row.fold_version !== FOLD_VERSION || row.state === null) found.set(row.uuid, 'refold');
      else found.set(row.uuid, { state: row.state as DeviceState, head: { version: row.version, last_hash: row.last_hash } });
    }
    return found;
  }

  async function run(batch: Job[]): Promise<void> {
    let loaded: Map<string, Loaded | 'refold'>;
    try {
      loaded = await load(batch.map((job) => job.uuid));
    } catch (error) {
      for (const job of batch) job.reject(error);
      return;
    }
    const decided: Decided[] = [];
    const slow: Job[] = [];
    for (const job of batch) {
      const current = loaded.get(job.uuid);
      // unknown here (not registered yet?) or folded by another evolve: the slow path knows how
      if (current === undefined || current === 'refold') { slow.push(job); continue; }
      try {
        const events = job.decide(current.state);
        if (events.length === 0) { job.resolve({ state: current.state, events: [], head: current.head }); continue; }
        const state = events.reduce(evolve, current.state);
        if (state.status !== 'registered') { slow.push(job); continue; }
        const rows = prepareEvents('device', job.uuid, current.head, toNewEvents({ ...deviceAdapter, causes: causationIndexes }, events, job.context));
        decided.push({ job, loaded: current, state, rows });
      } catch (error) {
        job.reject(error);
      }
    }
    if (decided.length > 0) {
      try {
        const written = await write(decided);
        for (const d of decided) {
          const inserted = written.get(d.job.uuid);
          if (inserted === undefined) { slow.push(d.job); continue; }
          const events = d.rows.map((row) => ({ ...row, ...inserted.get(row.event_id)! }));
          const last = events[events.length - 1]!;
          const head = { version: last.aggregate_version, last_hash: last.hash };
          remember(d.job.uuid, { state: d.state, head });
          store.recordAppended(events);
          d.job.resolve({ state: d.state, events, head });
        }
      } catch (error) {
        for (const d of decided) { cache.delete(d.job.uuid); d.job.reject(error); }
      }
    }
    await Promise.all(slow.map(alone));
  }

  /**
   * One statement, one commit: CAS every stream, insert the events of the streams that
   * moved, update their read-model rows. Returns, per device written, its events'
   * global positions and transaction id; a device missing from the result lost its CAS.
   */
  async function write(decided: Decided[]): Promise<Map<string, Map<string, { global_position: number; transaction_id: string }>>> {
    const rows = decided.flatMap((d) => d.rows);
    await store.partitions.ensure(pool, rows.map((r) => r.timestamp));
    const seenAt = (d: Decided) => ((d.job.context.metadata.actor.type === 'device') ? d.rows[d.rows.length - 1]!.timestamp : null);
    const inserted = await pool.any(sql.type(insertedRow)`
      WITH input AS (
        SELECT * FROM ${sql.unnest(decided.map((d) => [
          d.job.uuid, d.loaded.head.version, d.rows[d.rows.length - 1]!.aggregate_version, d.rows[d.rows.length - 1]!.hash,
          JSON.stringify(d.state), d.state.is_active, d.state.drift.in_sync, d.state.drift_since, d.state.target?.version ?? 0,
          d.state.updated_at, seenAt(d),
        ]), ['text', 'int8', 'int8', 'text', 'jsonb', 'bool', 'bool', 'timestamptz', 'int4', 'timestamptz', 'timestamptz'])}
          AS i(uuid, expected, version, last_hash, state, is_active, in_sync, drift_since, target_version, updated_at, seen_at)
      ),
      cas AS (
        UPDATE streams s SET version = i.version, last_hash = i.last_hash, updated_at = now()
          FROM input i
         WHERE s.aggregate_type = 'device' AND s.aggregate_id = i.uuid AND s.version = i.expected
        RETURNING s.aggregate_id
      ),
      ins AS (
        INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
        SELECT e.* FROM ${sql.unnest(
          rows.map((r) => [r.event_id, r.event_type, r.aggregate_type, r.aggregate_id, r.aggregate_version, JSON.stringify(r.data), JSON.stringify(r.metadata), r.timestamp, r.source, r.hash]),
          ['uuid', 'text', 'text', 'text', 'int8', 'jsonb', 'jsonb', 'timestamptz', 'text', 'text'],
        )} AS e(event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
         WHERE e.aggregate_id IN (SELECT aggregate_id FROM cas)
        RETURNING event_id, aggregate_id, global_position, transaction_id::text AS transaction_id
      ),
      upd AS (
        UPDATE devices d SET is_active = i.is_active, in_sync = i.in_sync, drift_since = i.drift_since,
               target_version = i.target_version, state = i.state, version = i.version, updated_at = i.updated_at,
               fold_version = ${FOLD_VERSION}, last_seen_at = GREATEST(d.last_seen_at, i.seen_at)
          FROM input i
         WHERE d.uuid = i.uuid AND i.uuid IN (SELECT aggregate_id FROM cas)
      )
      SELECT event_id::text AS event_id, aggregate_id, global_position, transaction_id FROM ins`);
    const byDevice = new Map<string, Map<string, { global_position: number; transaction_id: string }>>();
    for (const row of inserted) {
      let events = byDevice.get(row.aggregate_id);
      if (events === undefined) byDevice.set(row.aggregate_id, events = new Map());
      events.set(row.event_id, { global_position: row.global_position, transaction_id: row.transaction_id });
    }
    return byDevice;
  }

  return {
    submit(uuid, decide, context) {
      return new Promise((resolve, reject) => {
        queue.push({ uuid, decide, context, resolve, reject });
        schedule();
      });
    },
    forget(uuid) {
      cache.delete(uuid);
    },
  };
}
