// Group commit for device commands on the ingest hot path (state reports). Concurrent
// requests for different devices are decided together and written by ONE autocommit
// statement: compare-and-set on every stream, insert every event, update every read-model
// row. PostgreSQL then commits (and fsyncs) many events at once instead of one per request.
// A device this process wrote last is decided from its state in memory without reading
// anything: the compare-and-set is what makes that safe. A device whose stream moved on
// (another writer, another instance, an admin's disable) is retried alone through
// handleCommand, reading fresh, so one conflict never fails the rest of the batch.
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { causationIndexes } from '../../domain/device/decide.ts';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import type { DeviceState, RegisteredDevice } from '../../domain/device/state.ts';
import { type CommandResult, handleCommand, toNewEvents } from '../event-store/command-handler.ts';
import { deviceAdapter } from './device-store.ts';
import { type EventStore, type PreparedEvent, prepareEvents, type StreamHead } from '../event-store/event-store.ts';
import type { EventMetadata } from '../../domain/recorded-event.ts';
import { StateCache } from './state-cache.ts';
import { setImmediate } from 'node:timers';

/** One device command waiting for its batch. */
type Job = {
  uuid: string;
  decide: (state: DeviceState) => DeviceEvent[];
  context: { metadata: EventMetadata; source: string };
  resolve: (result: CommandResult<DeviceState>) => void;
  reject: (error: unknown) => void;
};

type Loaded = { state: DeviceState; head: StreamHead };
type Decided = { job: Job; loaded: Loaded; state: RegisteredDevice; rows: PreparedEvent[]; stateJson?: string };

const loadRow = z.object({
  uuid: z.string(),
  version: z.number(),
  last_hash: z.string(),
  state: z.unknown(),
  fold_version: z.number().nullable(),
});
const insertedRow = z.object({
  event_id: z.string(),
  aggregate_id: z.string(),
  global_position: z.number(),
  transaction_id: z.string(),
});

const keyedByAppId = ['containers', 'volumes', 'networks', 'target'] as const;

/**
 * The state to keep in memory, with the objects keyed by app id that the fold rebuilt made
 * again by JSON.parse (same values). V8 stores small integer keys such as app id "1000"
 * set by assignment or spread in an array as long as the largest id, which every later
 * Object.keys or for-in over it walks and copies; JSON.parse builds the compact form.
 */
function compactKeyed(state: RegisteredDevice, before: DeviceState): RegisteredDevice {
  if (before.status !== 'registered') return state;
  let compact = state;
  for (const key of keyedByAppId) {
    if (state[key] === before[key] || state[key] === null) continue;
    if (compact === state) compact = { ...state };
    (compact as Record<string, unknown>)[key] = JSON.parse(JSON.stringify(state[key]));
  }
  return compact;
}

/** Options; defaults suit the API process. */
export type BatchWriterOptions = {
  /** Most commands in one statement. */
  maxBatch?: number;
  /** Batches written at the same time (each on its own connection). */
  maxInFlight?: number;
  /** Devices whose last committed state is kept in memory as an object (saves reading it back). */
  cacheSize?: number;
  /** Devices, beyond those, whose last committed state is kept as JSON text (see state-cache.ts); both 0: nothing is kept. */
  coldCacheSize?: number;
};

/** The writer: `submit` resolves when the command's events are committed. */
export type DeviceBatchWriter = {
  submit: (uuid: string, decide: Job['decide'], context: Job['context']) => Promise<CommandResult<DeviceState>>;
  /** Forgets a device's cached state (it is also dropped on any version conflict). */
  forget: (uuid: string) => void;
};

/** Creates a batch writer over a pool and the event store (for partitions and retries). */
export function createDeviceBatchWriter(
  pool: DatabasePool,
  store: EventStore,
  options: BatchWriterOptions = {},
): DeviceBatchWriter {
  const maxBatch = options.maxBatch ?? 256;
  const maxInFlight = options.maxInFlight ?? 3;
  const queue: Job[] = [];
  const busy = new Set<string>();
  // a fleet of 10,000 devices reporting in turn: 2,000 as objects, the rest as JSON text
  const cache = new StateCache<Loaded>({ hot: options.cacheSize ?? 2_000, cold: options.coldCacheSize ?? 20_000 });
  let inFlight = 0;
  let scheduled = false;

  /** Keeps a device's committed state; `stateJson`, when known, is JSON.stringify(loaded.state). */
  const remember = (uuid: string, loaded: Loaded, stateJson?: string) => {
    cache.set(
      uuid,
      loaded,
      stateJson === undefined ? undefined : `{"state":${stateJson},"head":${JSON.stringify(loaded.head)}}`,
    );
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
   * The heads of devices not decided from memory, read fresh: the state from the read model,
   * or from memory when the cached copy is of that same version.
   */
  async function load(uuids: string[]): Promise<Map<string, Loaded | 'refold'>> {
    const found = new Map<string, Loaded | 'refold'>();
    if (uuids.length === 0) return found;
    const rows = await pool.any(sql.type(loadRow)`
      SELECT s.aggregate_id AS uuid, s.version, s.last_hash, d.fold_version,
             CASE WHEN s.version = c.cached_version THEN NULL ELSE d.state END AS state
        FROM ${
      sql.unnest(uuids.map((uuid) => [uuid, cache.get(uuid)?.head.version ?? -1]), ['text', 'int8'])
    } AS c(uuid, cached_version)
        JOIN streams s ON s.aggregate_type = 'device' AND s.aggregate_id = c.uuid
        JOIN devices d ON d.uuid = c.uuid`);
    for (const row of rows) {
      const cached = cache.get(row.uuid);
      if (row.state === null && cached !== undefined && cached.head.version === row.version) {
        found.set(row.uuid, cached);
      } else if (row.fold_version !== FOLD_VERSION || row.state === null) found.set(row.uuid, 'refold');
      else {found.set(row.uuid, {
          state: row.state as DeviceState,
          head: { version: row.version, last_hash: row.last_hash },
        });}
    }
    return found;
  }

  /**
   * Decides one job against a loaded state. `fresh`: the state was just read with its head;
   * otherwise it is this process's last committed state of the device, which another writer
   * may have moved on since: events decided from it are written under the same
   * compare-and-set (a moved stream refuses them and the job is retried alone, reading
   * fresh), while an answer that writes nothing (an error such as device_inactive, or an
   * unchanged report) is only given from a fresh read ('verify').
   */
  function decideJob(job: Job, loaded: Loaded, fresh: boolean): Decided | 'done' | 'slow' | 'verify' {
    let events: DeviceEvent[];
    try {
      events = job.decide(loaded.state);
    } catch (error) {
      if (!fresh) return 'verify';
      job.reject(error);
      return 'done';
    }
    if (events.length === 0) {
      if (!fresh) return 'verify';
      job.resolve({ state: loaded.state, events: [], head: loaded.head });
      return 'done';
    }
    try {
      const state = events.reduce(evolve, loaded.state);
      if (state.status !== 'registered') return 'slow';
      const rows = prepareEvents(
        'device',
        job.uuid,
        loaded.head,
        toNewEvents({ ...deviceAdapter, causes: causationIndexes }, events, job.context),
      );
      return { job, loaded, state, rows };
    } catch (error) {
      if (!fresh) return 'verify'; // a failure, too, is only an answer from a fresh read
      job.reject(error);
      return 'done';
    }
  }

  async function run(batch: Job[]): Promise<void> {
    const decided: Decided[] = [];
    const slow: Job[] = [];
    const toLoad: Job[] = [];
    const take = (job: Job, outcome: ReturnType<typeof decideJob>) => {
      if (outcome === 'slow') slow.push(job);
      else if (outcome === 'verify') toLoad.push(job);
      else if (outcome !== 'done') decided.push(outcome);
    };
    // devices this process wrote last: decided from memory, no read (the write checks the head)
    for (const job of batch) {
      const cached = cache.get(job.uuid);
      if (cached === undefined) toLoad.push(job);
      else take(job, decideJob(job, cached, false));
    }
    if (toLoad.length > 0) {
      let loaded: Map<string, Loaded | 'refold'>;
      try {
        loaded = await load(toLoad.map((job) => job.uuid));
      } catch (error) {
        for (const job of toLoad) job.reject(error);
        loaded = new Map();
        toLoad.length = 0;
      }
      for (const job of toLoad) {
        const current = loaded.get(job.uuid);
        // unknown here (not registered yet?) or folded by another evolve: the slow path knows how
        if (current === undefined || current === 'refold') slow.push(job);
        else {
          const outcome = decideJob(job, current, true);
          if (outcome === 'verify') slow.push(job);
          else take(job, outcome);
        }
      }
    }
    if (decided.length > 0) {
      try {
        const written = await write(decided);
        for (const d of decided) {
          const inserted = written.get(d.job.uuid);
          if (inserted === undefined) {
            slow.push(d.job);
            continue;
          }
          const events = d.rows.map((row) => ({ ...row, ...inserted.get(row.event_id)! }));
          const last = events[events.length - 1]!;
          const head = { version: last.aggregate_version, last_hash: last.hash };
          remember(d.job.uuid, { state: compactKeyed(d.state, d.loaded.state), head }, d.stateJson);
          store.recordAppended(events);
          d.job.resolve({ state: d.state, events, head });
        }
      } catch (error) {
        for (const d of decided) {
          cache.delete(d.job.uuid);
          d.job.reject(error);
        }
      }
    }
    await Promise.all(slow.map(alone));
  }

  /**
   * One statement, one commit: CAS every stream, insert the events of the streams that
   * moved, update their read-model rows. The batch travels as two JSON parameters unpacked
   * by PostgreSQL (jsonb_to_recordset): one serialisation, nothing for the driver to escape.
   * Returns, per device written, its events' global positions and transaction id; a device
   * missing from the result lost its CAS.
   */
  async function write(
    decided: Decided[],
  ): Promise<Map<string, Map<string, { global_position: number; transaction_id: string }>>> {
    const rows = decided.flatMap((d) => d.rows);
    await store.partitions.ensure(pool, rows.map((r) => r.timestamp));
    // the state's JSON is made once: for the batch and for the cache's cold tier
    const devices = `[${
      decided.map((d) => {
        const last = d.rows[d.rows.length - 1]!;
        d.stateJson = JSON.stringify(d.state);
        const fields = JSON.stringify({
          uuid: d.job.uuid,
          expected: d.loaded.head.version,
          version: last.aggregate_version,
          last_hash: last.hash,
          is_active: d.state.is_active,
          in_sync: d.state.drift.in_sync,
          drift_since: d.state.drift_since,
          target_version: d.state.target?.version ?? 0,
          updated_at: d.state.updated_at,
          seen_at: d.job.context.metadata.actor.type === 'device' ? last.timestamp : null,
        });
        return `${fields.slice(0, -1)},"state":${d.stateJson}}`;
      }).join(',')
    }]`;
    const events = JSON.stringify(rows);
    const inserted = await pool.any(sql.type(insertedRow)`
      WITH input AS (
        SELECT * FROM jsonb_to_recordset(${devices}::jsonb)
          AS i(uuid text, expected int8, version int8, last_hash text, state jsonb, is_active bool, in_sync bool,
               drift_since timestamptz, target_version int4, updated_at timestamptz, seen_at timestamptz)
      ),
      cas AS (
        UPDATE streams s SET version = i.version, last_hash = i.last_hash, updated_at = now()
          FROM input i
         WHERE s.aggregate_type = 'device' AND s.aggregate_id = i.uuid AND s.version = i.expected
        RETURNING s.aggregate_id
      ),
      ins AS (
        INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
        SELECT e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.aggregate_version, e.data, e.metadata, e."timestamp", e.source, e.hash
          FROM jsonb_to_recordset(${events}::jsonb)
            AS e(event_id uuid, event_type text, aggregate_type text, aggregate_id text, aggregate_version int8,
                 data jsonb, metadata jsonb, "timestamp" timestamptz, source text, hash text)
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
