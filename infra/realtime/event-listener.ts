// EventListener (the seed's API): react to events as they are committed.
//
//   const listener = new EventListener({ name: 'alerts', pool });
//   listener.onEventType('device.offline', async (event) => { ... });
//   await listener.start();
//
// Gap-safe reads (infra/realtime/feed.ts), pushed by LISTEN/NOTIFY with polling as a fallback,
// a durable checkpoint per name, one running process per name (infra/realtime/leader-loop.ts).
// Delivery is at-least-once: after a crash, events handled since the last checkpoint are
// handed out again. A handler that keeps failing has its event dead-lettered; the listener
// goes on.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { DatabasePool } from 'slonik';
import { assertDatabaseOption, type DatabaseOption } from '../postgres/database-source.ts';
import {
  encodeCursor,
  EVENTS_CHANNEL,
  type FeedCursor,
  type FeedFilter,
  type FeedLag,
  feedLag,
  headCursor,
  KnownVersions,
  readFeedBatch,
  START_CURSOR,
} from './feed.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { LostLeadershipError, type RealtimeLog, type StepResult } from './leader-loop.ts';
import { LoopLifecycle } from './loop-lifecycle.ts';
import { retry, RetryAbortedError } from '../retry.ts';
import {
  checkpointCursor,
  claimCheckpoint,
  ensureCheckpoint,
  markRedelivered,
  markRedeliveryFailed,
  pendingRedeliveries,
  readCheckpoint,
  REDELIVER_CHANNEL,
  releaseCheckpoint,
  saveCheckpoint,
  storeDeadLetter,
} from './listener-store.ts';

/** A handler receives the stored event row (event_id, event_type, aggregate_id, data, metadata, timestamp…). */
export type EventHandler = (event: StoredEvent) => unknown;

/** Options; every one has a default. */
export type EventListenerOptions = DatabaseOption & {
  /** The checkpoint and lock name (default "default"): one running process per name. */
  name?: string;
  /** Where a listener with no checkpoint yet starts: the first event (default) or the events from now on. */
  startFrom?: 'beginning' | 'now';
  /** Events read per batch; the checkpoint is written after each batch (default 100). */
  batchSize?: number;
  /** Polling fallback when no notification arrives (default 1000 ms). */
  pollIntervalMs?: number;
  /**
   * After a read that was not a full batch, wait until this long after it before reading
   * again (default 0): under a steady stream of commits, one read per interval takes what
   * many notifications announced. Handlers run up to this much later.
   */
  coalesceMs?: number;
  /** How often a standby process tries to take over (default 1000 ms). */
  lockPollMs?: number;
  /** Attempts per event before it is dead-lettered (default 5). */
  maxAttempts?: number;
  /** First retry delay; doubles each attempt up to `retryMaxMs` (defaults 100 ms, 30 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Runs once per batch after it is read and before its handlers (e.g. refresh a cache). */
  beforeBatch?: (events: readonly StoredEvent[]) => unknown;
  /**
   * Which events the handlers need (default: all): the others are not read, the cursor
   * moves past them. Asked again right after each read: when the answer changed (say, a
   * new subscription), the batch is thrown away and read again with the new filter, so an
   * event is never skipped for a filter that was older than the event.
   */
  select?: () => Promise<FeedFilter | undefined>;
  log?: RealtimeLog;
  onStatus?: (status: 'leader' | 'standby' | 'stopped') => void;
};

const NAME = /^[\w.:-]{1,100}$/;

/** Describes a handler failure for a dead letter (bounded). */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? (error.stack ?? `${error.name}: ${error.message}`) : String(error);
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}

const filterKey = (filter: FeedFilter | undefined) => (filter === undefined ? '*' : JSON.stringify([
  filter.types === undefined ? null : [...filter.types].sort(),
  filter.typePrefixes === undefined ? null : [...filter.typePrefixes].sort(),
  filter.aggregateType ?? null,
  filter.aggregateId ?? null,
]));

/** Whether two filters select the same events. */
function sameFilter(a: FeedFilter | undefined, b: FeedFilter | undefined): boolean {
  return filterKey(a) === filterKey(b);
}

/** Reacts to events, at least once each, in per-aggregate version order. */
export class EventListener {
  /** The listener's name. */
  readonly name: string;
  readonly #options: EventListenerOptions;
  readonly #byType = new Map<string, EventHandler[]>();
  readonly #any: EventHandler[] = [];
  readonly #lifecycle: LoopLifecycle;
  #token = '';
  #cursor: FeedCursor = START_CURSOR;
  #known = new KnownVersions();
  #checkRedeliveries = true;
  #filter: { value: FeedFilter | undefined } | null = null;
  #nextReadAt = 0;

  constructor(options: EventListenerOptions = {}) {
    const name = options.name ?? 'default';
    if (!NAME.test(name)) throw new Error(`listener name "${name}" must be 1-100 letters, digits, _ . : -`);
    assertDatabaseOption(options, `EventListener "${name}"`);
    this.name = name;
    this.#options = options;
    this.#lifecycle = new LoopLifecycle(`EventListener "${name}"`, options);
  }

  /** Calls `handler` for each event of `type`. */
  onEventType(type: string, handler: EventHandler): this {
    const list = this.#byType.get(type);
    if (list === undefined) this.#byType.set(type, [handler]);
    else list.push(handler);
    return this;
  }

  /** Calls `handler` for every event. */
  onAny(handler: EventHandler): this {
    this.#any.push(handler);
    return this;
  }

  /** True while this process holds the listener's lock and processes events. */
  get isLeader(): boolean {
    return this.#lifecycle.isLeader;
  }

  /** Starts listening; resolves once running (or standing by when another process has the name). */
  start(): Promise<void> {
    return this.#lifecycle.start(async (pool) => {
      await ensureCheckpoint(
        pool,
        this.name,
        this.#options.startFrom === 'now' ? await headCursor(pool) : START_CURSOR,
      );
      return {
        label: `listener "${this.name}"`,
        lockName: `listener:${this.name}`,
        channels: [EVENTS_CHANNEL, REDELIVER_CHANNEL],
        onLeader: async () => {
          this.#token = `${hostname()}:${process.pid}:${randomUUID()}`;
          this.#cursor = checkpointCursor(await claimCheckpoint(pool, this.name, this.#token));
          this.#known = new KnownVersions();
          this.#filter = null;
          this.#checkRedeliveries = true;
        },
        onNotification: (channel, payload) => {
          if (channel === REDELIVER_CHANNEL && payload === this.name) this.#checkRedeliveries = true;
        },
        step: () => this.#step(pool, this.#lifecycle.log),
      };
    });
  }

  /** Finishes the event in hand, writes the checkpoint, releases the lock and the database. */
  stop(): Promise<void> {
    return this.#lifecycle.stop(async (pool) => {
      if (this.#token !== '') await releaseCheckpoint(pool, this.name, this.#token).catch(() => undefined);
    });
  }

  /** How far behind the durable checkpoint is: events not yet handled and the age of the oldest. */
  lag(): Promise<FeedLag> {
    return this.#lifecycle.withDatabase(async (pool) => {
      const row = await readCheckpoint(pool, this.name);
      return feedLag(pool, row === null ? START_CURSOR : checkpointCursor(row));
    });
  }

  async #step(pool: DatabasePool, log: RealtimeLog): Promise<StepResult> {
    const lifecycle = this.#lifecycle;
    if (this.#checkRedeliveries) {
      this.#checkRedeliveries = false;
      await this.#redeliver(pool, log);
    }
    const wait = this.#nextReadAt - Date.now();
    if (wait > 0) {
      try {
        await delay(wait, undefined, { signal: lifecycle.stopSignal });
      } catch {
        return 'idle';
      }
    }
    const before = this.#cursor;
    const select = this.#options.select;
    const filter = select === undefined ? undefined : (this.#filter ??= { value: await select() }).value;
    const batch = await readFeedBatch(pool, before, {
      limit: this.#options.batchSize ?? 100,
      known: this.#known,
      ...(filter === undefined ? {} : { filter }),
    });
    this.#nextReadAt = batch.full ? 0 : Date.now() + (this.#options.coalesceMs ?? 0);
    if (select !== undefined) {
      const now = await select();
      if (!sameFilter(now, filter)) {
        this.#filter = { value: now };
        return 'more';
      }
    }
    if (batch.items.length > 0) await this.#options.beforeBatch?.(batch.items.map((i) => i.event));
    let cursor = before;
    let processed = 0;
    let lastEventAt: string | null = null;
    let complete = true;
    try {
      for (const item of batch.items) {
        if (!lifecycle.running || !lifecycle.isLeader) {
          complete = false;
          break;
        }
        await this.#deliver(pool, item.event, log);
        cursor = item.cursor;
        processed += 1;
        lastEventAt = item.event.timestamp;
      }
    } catch (error) {
      if (!(error instanceof RetryAbortedError)) {
        await this.#commit(pool, before, cursor, processed, lastEventAt);
        throw error;
      }
      complete = false;
    }
    if (complete) cursor = batch.cursor;
    await this.#commit(pool, before, cursor, processed, lastEventAt);
    if (!complete) return 'idle';
    return batch.full ? 'more' : batch.heldBack ? 'held' : 'idle';
  }

  async #commit(
    pool: DatabasePool,
    before: FeedCursor,
    cursor: FeedCursor,
    processed: number,
    lastEventAt: string | null,
  ): Promise<void> {
    if (processed === 0 && encodeCursor(before) === encodeCursor(cursor)) return;
    if (!(await saveCheckpoint(pool, this.name, this.#token, cursor, processed, lastEventAt))) {
      throw new LostLeadershipError('another process took over the checkpoint; standing by');
    }
    this.#cursor = cursor;
  }

  /** Runs the event's handlers; retries with backoff; dead-letters after the last attempt. */
  async #deliver(pool: DatabasePool, event: StoredEvent, log: RealtimeLog): Promise<void> {
    const outcome = await this.#attempt(event, log);
    if (outcome.ok) return;
    await storeDeadLetter(pool, this.name, event, outcome.error, outcome.attempts);
    log(
      'warn',
      `listener "${this.name}": ${event.event_type} ${event.event_id} dead-lettered after ${outcome.attempts} attempts: ${
        outcome.error.split('\n')[0]
      }`,
    );
  }

  /** Runs the event's handlers, retrying with backoff; a stop during a wait throws RetryAbortedError. */
  async #attempt(
    event: StoredEvent,
    log: RealtimeLog,
  ): Promise<{ ok: true } | { ok: false; error: string; attempts: number }> {
    const handlers = [...(this.#byType.get(event.event_type) ?? []), ...this.#any];
    const maxAttempts = Math.max(1, this.#options.maxAttempts ?? 5);
    const backoff = { baseMs: this.#options.retryBaseMs ?? 100, maxMs: this.#options.retryMaxMs ?? 30_000 };
    let next = 0;
    try {
      await retry(async () => {
        // a retry resumes at the handler that failed: the ones before it are done
        for (; next < handlers.length; next += 1) await handlers[next]!(event);
      }, {
        attempts: maxAttempts,
        delay: backoff,
        signal: this.#lifecycle.stopSignal,
        onRetry: (error, attempt, wait) =>
          log(
            'warn',
            `listener "${this.name}": handler failed on ${event.event_type} ${event.event_id} (attempt ${attempt}/${maxAttempts}): ${
              (error as Error)?.message ?? String(error)
            }; retrying in ${wait} ms`,
          ),
      });
      return { ok: true };
    } catch (error) {
      if (error instanceof RetryAbortedError) throw error;
      // retry rethrows the last failure only once every attempt is spent
      return { ok: false, error: describeError(error), attempts: maxAttempts };
    }
  }

  async #redeliver(pool: DatabasePool, log: RealtimeLog): Promise<void> {
    for (;;) {
      const letters = await pendingRedeliveries(pool, this.name, 20);
      if (letters.length === 0) return;
      await this.#options.beforeBatch?.(letters.map((l) => l.stored));
      for (const letter of letters) {
        if (!this.#lifecycle.running) return;
        const outcome = await this.#attempt(letter.stored, log);
        if (outcome.ok) {
          await markRedelivered(pool, letter.id);
          log(
            'info',
            `listener "${this.name}": dead letter ${letter.id} (${letter.event_type} ${letter.event_id}) redelivered`,
          );
        } else {
          await markRedeliveryFailed(pool, letter.id, outcome.error, outcome.attempts);
          log(
            'warn',
            `listener "${this.name}": dead letter ${letter.id} failed again: ${outcome.error.split('\n')[0]}`,
          );
        }
      }
    }
  }
}
