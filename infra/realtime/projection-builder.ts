// ProjectionBuilder (the seed's API): a read model folded from events.
//
//   const builder = new ProjectionBuilder('device_summary', { pool });
//   builder.on('device.provisioned', async (event, state) => ({ ...state, deviceCount: (state.deviceCount || 0) + 1 }));
//   await builder.process();          // catch up and return
//   await builder.start();            // or keep up continuously (one process per name)
//
// State is one JSON document per key (by default a single key, "default"); `key` splits it,
// e.g. per device. Each batch's states and the checkpoint commit in one transaction,
// compare-and-set on a revision, so builders on several instances never apply an event
// twice. The stored projection is named by `name` plus a hash of its definition (handled
// types, handler source, `version`): a changed definition builds anew from the first event.
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { DatabasePool } from 'slonik';
import { assertDatabaseOption, type DatabaseOption } from '../postgres/database-source.ts';
import {
  encodeCursor,
  EVENTS_CHANNEL,
  type FeedFilter,
  type FeedLag,
  feedLag,
  KnownVersions,
  readFeedBatch,
} from './feed.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { describeError } from './event-listener.ts';
import type { RealtimeLog, StepResult } from './leader-loop.ts';
import { LoopLifecycle } from './loop-lifecycle.ts';
import { StateCache } from '../devices/state-cache.ts';
import {
  commitProjection,
  findProjection,
  loadProjection,
  loadStates,
  projectionCursor,
  type ProjectionRow,
  readState,
  recordProjectionError,
  resetProjection,
} from './projection-store.ts';

/** Folds one event into the state: return the new state, `undefined` to keep it, `null` to delete it. */
export type ProjectionHandler<S> = (
  event: StoredEvent,
  state: S,
) => S | null | undefined | Promise<S | null | undefined>;

/** Options; every one has a default. */
export type ProjectionOptions<S> = DatabaseOption & {
  /** Which state an event folds into; null skips the event (default: one state, key "default"). */
  key?: (event: StoredEvent) => string | null;
  /** The state before any event (default `{}`). */
  initialState?: () => S;
  /** Bump to rebuild when something the handlers call changes meaning. */
  version?: string | number;
  /**
   * Read only this aggregate type's events, whatever their type (default: the handled types).
   * For handlers of every type of one aggregate: whole streams are read, so each stream's
   * order is known from what was read before and no extra lookup is needed per batch.
   */
  aggregateType?: string;
  /** Events per batch (default 500). */
  batchSize?: number;
  /**
   * States kept in memory between batches (default 0), so a batch reads only the states of
   * keys it has not seen; valid while no other process commits to the projection.
   */
  cacheStates?: number;
  /** States kept beyond those as JSON text, parsed when next needed (default 0; see state-cache.ts). */
  coldCacheStates?: number;
  pollIntervalMs?: number;
  /**
   * Continuous mode: after a batch that was not full, wait until this long after it before
   * reading again (default 0), so one read takes what many commits announced.
   */
  coalesceMs?: number;
  lockPollMs?: number;
  log?: RealtimeLog;
  onStatus?: (status: 'leader' | 'standby' | 'stopped') => void;
};

/** What `process()` did. */
export type ProcessResult = { processed: number; caught_up: boolean };

/** A projection's checkpoint and lag. */
export type ProjectionStatus = {
  name: string;
  definition: string;
  events_processed: number;
  last_event_at: string | null;
  last_error: string | null;
  rebuilt_at: string | null;
  updated_at: string | null;
} & FeedLag;

/** A handler threw: the projection stops at that event (a skipped event would leave wrong state). */
export class ProjectionError extends Error {
  readonly event: StoredEvent;
  constructor(projection: string, event: StoredEvent, cause: unknown) {
    super(
      `projection "${projection}" failed on ${event.event_type} ${event.event_id}: ${
        (cause as Error)?.message ?? String(cause)
      }`,
      { cause },
    );
    this.name = 'ProjectionError';
    this.event = event;
  }
}

const DEFAULT_KEY = 'default';
const NAME = /^[\w.:-]{1,100}$/;

/** Builds a read model from events. `S` is the state's type. */
// deno-lint-ignore no-explicit-any -- the seed's projections read untyped state (state.deviceCount || 0)
export class ProjectionBuilder<S = Record<string, any>> {
  /** The projection's name. */
  readonly name: string;
  readonly #options: ProjectionOptions<S>;
  readonly #handlers = new Map<string, ProjectionHandler<S>[]>();
  #definition: string | null = null;
  readonly #lifecycle: LoopLifecycle;
  #queue: Promise<unknown> = Promise.resolve();
  /** Streams read in order so far, valid while the stored revision is the one this builder committed. */
  #known = new KnownVersions();
  #knownRevision: number | null = null;
  /** States as committed by this builder, same validity as #known. */
  readonly #cached: StateCache<unknown>;
  #nextReadAt = 0;

  constructor(name: string, options: ProjectionOptions<S> = {}) {
    if (!NAME.test(name)) throw new Error(`projection name "${name}" must be 1-100 letters, digits, _ . : -`);
    assertDatabaseOption(options, `ProjectionBuilder "${name}"`);
    this.name = name;
    this.#options = options;
    this.#lifecycle = new LoopLifecycle(`ProjectionBuilder "${name}"`, options);
    this.#cached = new StateCache({ hot: options.cacheStates ?? 0, cold: options.coldCacheStates ?? 0 });
  }

  /** Folds events of `type` with `handler` (several handlers for a type run in order). */
  on(type: string, handler: ProjectionHandler<S>): this {
    if (this.#definition !== null) {
      throw new Error(`projection "${this.name}": register handlers before the first process(), start() or read`);
    }
    const list = this.#handlers.get(type);
    if (list === undefined) this.#handlers.set(type, [handler]);
    else list.push(handler);
    return this;
  }

  /** The hash naming this definition in storage (fixed once the builder is first used). */
  get definition(): string {
    if (this.#definition === null) {
      const handlers = [...this.#handlers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map((
        [type, list],
      ) => [type, list.map(String)]);
      const text = JSON.stringify({
        version: this.#options.version ?? null,
        key: this.#options.key === undefined ? null : String(this.#options.key),
        initial: this.#options.initialState === undefined ? null : String(this.#options.initialState),
        ...(this.#options.aggregateType === undefined ? {} : { aggregate_type: this.#options.aggregateType }),
        handlers,
      });
      this.#definition = createHash('sha256').update(text).digest('hex').slice(0, 16);
    }
    return this.#definition;
  }

  /** Catches up with every committed event (up to `maxEvents`) and returns. */
  process(options: { maxEvents?: number } = {}): Promise<ProcessResult> {
    // one run at a time per builder: a second call waits, then finds what came since
    const run = this.#queue.then(() =>
      this.#lifecycle.withDatabase((pool) => this.#catchUp(pool, options.maxEvents ?? Infinity))
    );
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Throws the state away and builds it again from the first event. */
  rebuild(): Promise<ProcessResult> {
    const run = this.#queue.then(() =>
      this.#lifecycle.withDatabase(async (pool) => {
        await resetProjection(pool, this.name, this.definition);
        return this.#catchUp(pool, Infinity);
      })
    );
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Keeps the projection up to date until stop(); one process per name and definition does the work. */
  start(): Promise<void> {
    return this.#lifecycle.start((pool) => ({
      label: `projection "${this.name}"`,
      lockName: `projection:${this.name}:${this.definition}`,
      channels: [EVENTS_CHANNEL],
      step: () => this.#continuousStep(pool),
    }));
  }

  /** Stops continuous mode after the batch in hand. */
  stop(): Promise<void> {
    return this.#lifecycle.stop(() => this.#queue);
  }

  /** The state stored under `key` (the initial state when none). */
  async getState(key: string = DEFAULT_KEY): Promise<S> {
    return this.#lifecycle.withDatabase(async (pool) => {
      const stored = await readState(pool, this.name, this.definition, key);
      return stored === undefined ? this.#initial() : (stored as S);
    });
  }

  /** Checkpoint, last error and lag (counting only the event types this projection handles). */
  async status(): Promise<ProjectionStatus> {
    return this.#lifecycle.withDatabase(async (pool) => {
      const row = await findProjection(pool, this.name, this.definition);
      const cursor = row === null ? { transactionId: '0', position: 0, ahead: [] } : projectionCursor(row);
      return {
        name: this.name,
        definition: this.definition,
        events_processed: row?.events_processed ?? 0,
        last_event_at: row?.last_event_at ?? null,
        last_error: row?.last_error ?? null,
        rebuilt_at: row?.rebuilt_at ?? null,
        updated_at: row?.updated_at ?? null,
        ...(await feedLag(pool, cursor, { types: [...this.#handlers.keys()] })),
      };
    });
  }

  /**
   * Keeps the states of a committed batch in memory (`cacheStates` as objects, then
   * `coldCacheStates` as JSON text; least recently used first out), as stored: JSON, read back
   * from what was written.
   */
  #remember(stored: Map<string, unknown>, upserts: ReadonlyMap<string, S>, deletes: ReadonlySet<string>): void {
    if ((this.#options.cacheStates ?? 0) + (this.#options.coldCacheStates ?? 0) === 0) return;
    for (const [key, state] of stored) {
      // a state taken from the cache is already its newest entry (with its JSON, if it has one)
      if (upserts.has(key) || deletes.has(key) || this.#cached.has(key)) continue;
      this.#cached.set(key, state);
    }
    for (const [key, state] of upserts) {
      const json = JSON.stringify(state);
      this.#cached.set(key, JSON.parse(json), json);
    }
    for (const key of deletes) this.#cached.delete(key);
  }

  #initial(): S {
    return this.#options.initialState ? this.#options.initialState() : ({} as S);
  }

  async #continuousStep(pool: DatabasePool): Promise<StepResult> {
    const wait = this.#nextReadAt - Date.now();
    if (wait > 0) await delay(wait);
    if (!this.#lifecycle.running) return 'idle';
    const run = this.#queue.then(() => this.#batch(pool));
    this.#queue = run.catch(() => undefined);
    const result = await run;
    this.#nextReadAt = result.full ? 0 : Date.now() + (this.#options.coalesceMs ?? 0);
    return result.full ? 'more' : result.heldBack ? 'held' : 'idle';
  }

  async #catchUp(pool: DatabasePool, maxEvents: number): Promise<ProcessResult> {
    let processed = 0;
    for (;;) {
      const batch = await this.#batch(
        pool,
        Math.min(this.#options.batchSize ?? 500, Math.max(1, maxEvents - processed)),
      );
      processed += batch.processed;
      if (!batch.full) return { processed, caught_up: true };
      if (processed >= maxEvents) return { processed, caught_up: false };
    }
  }

  /** Reads, folds and commits one batch; on a lost compare-and-set, reads again. */
  async #batch(
    pool: DatabasePool,
    limit = this.#options.batchSize ?? 500,
  ): Promise<{ processed: number; full: boolean; heldBack: boolean }> {
    const types = [...this.#handlers.keys()];
    const filter: FeedFilter = this.#options.aggregateType === undefined
      ? { types }
      : { aggregateType: this.#options.aggregateType };
    for (;;) {
      // the row exists once this builder has committed to it: no insert needed to read it
      const row: ProjectionRow =
        (this.#knownRevision === null ? null : await findProjection(pool, this.name, this.definition)) ??
          await loadProjection(pool, this.name, this.definition);
      const before = projectionCursor(row);
      // what this builder read and stored before counts only when nobody else committed since
      if (row.revision !== this.#knownRevision) {
        this.#known = new KnownVersions();
        this.#cached.clear();
      }
      this.#knownRevision = null;
      const batch = await readFeedBatch(pool, before, { limit, filter, known: this.#known });
      const keyOf = this.#options.key ?? (() => DEFAULT_KEY);
      const keys = [...new Set(batch.items.map((i) => keyOf(i.event)).filter((k): k is string => k !== null))];
      const stored = await loadStates(pool, this.name, this.definition, keys.filter((k) => !this.#cached.has(k)));
      for (const key of keys) {
        const cached = this.#cached.get(key);
        if (cached !== undefined) stored.set(key, cached);
      }
      const states = new Map<string, S>();
      const upserts = new Map<string, S>();
      const deletes = new Set<string>();
      for (const { event } of batch.items) {
        const key = keyOf(event);
        if (key === null) continue;
        let state = states.get(key) ?? (stored.has(key) ? (stored.get(key) as S) : this.#initial());
        for (const handler of this.#handlers.get(event.event_type) ?? []) {
          let next: S | null | undefined;
          try {
            next = await handler(event, state);
          } catch (error) {
            await recordProjectionError(pool, this.name, this.definition, describeError(error)).catch(() => undefined);
            throw new ProjectionError(this.name, event, error);
          }
          if (next === undefined) continue;
          if (next === null) {
            state = this.#initial();
            upserts.delete(key);
            deletes.add(key);
          } else {
            state = next;
            upserts.set(key, next);
            deletes.delete(key);
          }
        }
        states.set(key, state);
      }
      const last = batch.items[batch.items.length - 1];
      if (batch.items.length === 0 && encodeCursor(batch.cursor) === encodeCursor(before)) {
        this.#knownRevision = row.revision;
        return { processed: 0, full: false, heldBack: batch.heldBack };
      }
      const committed = await commitProjection(pool, this.name, this.definition, {
        revision: row.revision,
        cursor: batch.cursor,
        processed: batch.items.length,
        lastEventAt: last?.event.timestamp ?? null,
        upserts,
        deletes,
      });
      if (committed) {
        this.#remember(stored, upserts, deletes);
        this.#knownRevision = row.revision + 1;
        return { processed: batch.items.length, full: batch.full, heldBack: batch.heldBack };
      }
    }
  }
}
