// Group commit for device commands on the ingest hot path (state reports). Concurrent
// requests for different devices are decided together and written by ONE autocommit
// statement, the event store's append of many streams (compare-and-set on every stream,
// insert every event) joined by the devices upsert of every read-model row. PostgreSQL then
// commits (and fsyncs) many events at once instead of one per request.
// A device this process wrote last is decided from its state in memory without reading
// anything: the compare-and-set is what makes that safe. A device whose stream moved on
// (another writer, another instance or worker, an admin's disable) never fails the rest of
// the batch: decided from memory, it is decided again from a fresh read in the next batch;
// refused again (or refused when decided fresh), it is retried alone through handleCommand.
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { causationIndexes } from '../../domain/device/decide.ts';
import { evolve, FOLD_VERSION } from '../../domain/device/evolve.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import type { DeviceState, RegisteredDevice } from '../../domain/device/state.ts';
import { type CommandResult, handleCommand, toNewEvents } from '../event-store/command-handler.ts';
import { deviceAdapter, deviceLoadRow, deviceRowJson, seenAt, upsertDevices } from './device-store.ts';
import {
  type EventStore,
  headAfter,
  type PreparedEvent,
  prepareEvents,
  type ReadModelWrite,
  stampAfter,
  type StreamHead,
} from '../event-store/event-store.ts';
import { insertSamplesAtHeads, type MetricsRow, metricsWrite } from '../telemetry/metrics-series.ts';
import { createTelemetryPartitionCache } from '../telemetry/partitions.ts';
import type { EventMetadata, StoredEvent } from '../../domain/recorded-event.ts';
import { StateCache } from './state-cache.ts';
import { setImmediate } from 'node:timers';

/** One device command waiting for its batch. */
type Job = {
  uuid: string;
  decide: (state: DeviceState) => DeviceEvent[];
  context: { metadata: EventMetadata; source: string };
  /** A metrics sample stored in the same statement as the job's events, if it appends any (issue #15). */
  sample?: MetricsRow | undefined;
  resolve: (result: BatchResult) => void;
  reject: (error: unknown) => void;
  /** Decided from memory once and refused by a moved head: the next try reads fresh, in a batch. */
  retried?: boolean;
};

/**
 * A command's result; `sampleWritten` when its metrics sample was committed by the batch (with
 * its events, or for a report that changes nothing, with its contact: then `contactLost` says
 * whether the device is marked lost).
 */
export type BatchResult = CommandResult<DeviceState> & { sampleWritten?: boolean; contactLost?: boolean };

type Loaded = { state: DeviceState; head: StreamHead };
type Decided = {
  job: Job;
  loaded: Loaded;
  state: RegisteredDevice;
  rows: PreparedEvent[];
  /** Decided from a state read with its head in this batch (not from memory). */
  fresh: boolean;
  stateJson?: string;
};

const loadRow = deviceLoadRow.extend({ uuid: z.string() });

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
  /** Called for each command written the slow way, alone (tests, metrics). */
  onAlone?: (uuid: string) => void;
};

/** The writer: `submit` resolves when the command's events are committed. */
export type DeviceBatchWriter = {
  submit: (uuid: string, decide: Job['decide'], context: Job['context'], sample?: MetricsRow) => Promise<BatchResult>;
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
  const metricsPartitions = createTelemetryPartitionCache('device_metrics');
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
    options.onAlone?.(job.uuid);
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
      SELECT s.aggregate_id AS uuid, s.version, s.last_hash, s.last_timestamp, d.fold_version,
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
          head: { version: row.version, last_hash: row.last_hash, last_timestamp: row.last_timestamp },
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
   * unchanged report) is only given from a fresh read ('verify'), or, for an unchanged report
   * with a metrics sample, under a check of the head in the statement that stores the sample
   * ('quiet': most of a fleet's reports change only metrics, issue #15).
   */
  function decideJob(job: Job, loaded: Loaded, fresh: boolean): Decided | 'done' | 'slow' | 'verify' | 'quiet' {
    let events: readonly DeviceEvent[];
    try {
      // stamped as the append stores them (never before the head's last event), then folded
      events = stampAfter(loaded.head, job.decide(loaded.state));
    } catch (error) {
      if (!fresh) return 'verify';
      job.reject(error);
      return 'done';
    }
    if (events.length === 0) {
      if (!fresh) return job.sample === undefined ? 'verify' : 'quiet';
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
      return { job, loaded, state, rows, fresh };
    } catch (error) {
      if (!fresh) return 'verify'; // a failure, too, is only an answer from a fresh read
      job.reject(error);
      return 'done';
    }
  }

  /**
   * Unchanged reports with a sample, decided from memory: their samples and contacts in one
   * statement that checks each head; a device whose stream moved on is decided again (`moved`).
   */
  async function writeQuiet(quiet: (Loaded & { job: Job })[], moved: (job: Job) => void): Promise<void> {
    try {
      const samples = quiet.map((q) => ({ ...q.job.sample!, expected_version: q.head.version }));
      await metricsPartitions.ensure(pool, samples.map((sample) => sample.reported_at));
      const lost = await insertSamplesAtHeads(pool, samples);
      for (const q of quiet) {
        const contactLost = lost.get(q.job.uuid);
        if (contactLost === undefined) moved(q.job);
        else q.job.resolve({ state: q.state, events: [], head: q.head, sampleWritten: true, contactLost });
      }
    } catch (error) {
      for (const q of quiet) q.job.reject(error);
    }
  }

  async function run(batch: Job[]): Promise<void> {
    const decided: Decided[] = [];
    const slow: Job[] = [];
    // decided from memory, refused by a head that moved on (another process wrote the device:
    // another instance, or another worker, whose writes this cache never sees): decided again
    // from a fresh read in the next batch, still group-committed; only a second refusal goes
    // the slow, locking way alone
    const again: Job[] = [];
    const moved = (job: Job) => {
      cache.delete(job.uuid);
      if (job.retried === true) slow.push(job);
      else {
        job.retried = true;
        again.push(job);
      }
    };
    const toLoad: Job[] = [];
    const quiet: (Loaded & { job: Job })[] = [];
    const take = (job: Job, outcome: ReturnType<typeof decideJob>) => {
      if (outcome === 'slow') slow.push(job);
      else if (outcome === 'verify' || outcome === 'quiet') toLoad.push(job);
      else if (outcome !== 'done') decided.push(outcome);
    };
    // devices this process wrote last: decided from memory, no read (the write checks the head)
    for (const job of batch) {
      const cached = cache.get(job.uuid);
      if (cached === undefined) toLoad.push(job);
      else {
        const outcome = decideJob(job, cached, false);
        if (outcome === 'quiet') quiet.push({ ...cached, job });
        else take(job, outcome);
      }
    }
    // written beside the events' statement; a moved head sends its job to `again` (or `slow`) before that runs
    const quietWritten = quiet.length === 0 ? Promise.resolve() : writeQuiet(quiet, moved);
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
          if (outcome === 'verify' || outcome === 'quiet') slow.push(job);
          else take(job, outcome);
        }
      }
    }
    if (decided.length > 0) {
      try {
        const written = await write(decided);
        for (const [i, d] of decided.entries()) {
          const events = written[i];
          if (!events) {
            if (d.fresh) slow.push(d.job);
            else moved(d.job);
            continue;
          }
          const head = headAfter(events);
          remember(d.job.uuid, { state: compactKeyed(d.state, d.loaded.state), head }, d.stateJson);
          store.recordAppended(events);
          d.job.resolve({ state: d.state, events, head, sampleWritten: d.job.sample !== undefined });
        }
      } catch (error) {
        for (const d of decided) {
          cache.delete(d.job.uuid);
          d.job.reject(error);
        }
      }
    }
    await quietWritten;
    await Promise.all(slow.map(alone));
    // ahead of the queue, so that a device's later commands (queued meanwhile) still follow
    // them; they are taken once this batch lets go of their devices
    if (again.length > 0) queue.unshift(...again);
  }

  /**
   * One statement, one commit: every decided device's events appended (the event store's
   * append statement) with its devices row. Per decided device, its stored events, or null
   * when its stream had moved on (nothing of it written).
   */
  async function write(decided: Decided[]): Promise<(StoredEvent[] | null)[]> {
    // the state's JSON is made once: for the batch and for the cache's cold tier
    const devices = decided.map((d) =>
      deviceRowJson(d.job.uuid, d.state, seenAt(d.rows), d.stateJson = JSON.stringify(d.state))
    );
    const writes: ReadModelWrite[] = [(appended) => upsertDevices(devices, appended)];
    // reports' metrics samples (issue #15) commit with their events: one statement, one commit
    const samples = decided.flatMap((d) => (d.job.sample === undefined ? [] : [d.job.sample]));
    if (samples.length > 0) {
      await metricsPartitions.ensure(pool, samples.map((sample) => sample.reported_at));
      writes.push(metricsWrite(samples));
    }
    return store.appendStreams(pool, decided.map((d) => d.rows), writes);
  }

  return {
    submit(uuid, decide, context, sample) {
      return new Promise((resolve, reject) => {
        queue.push({ uuid, decide, context, sample, resolve, reject });
        schedule();
      });
    },
    forget(uuid) {
      cache.delete(uuid);
    },
  };
}
