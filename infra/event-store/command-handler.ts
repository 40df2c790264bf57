// The shell around a decider: load (read model + stream head) → decide → stamp (never before
// the head's last event) → append with the expected version → update the inline read model,
// all in one transaction; retried when another writer got there first.
import { randomUUID } from 'node:crypto';
import { type CommonQueryMethods, type DatabasePool } from 'slonik';
import type { EventMetadata, StoredEvent } from '../../domain/recorded-event.ts';
import {
  ConcurrencyError,
  type EventStore,
  headAfter,
  type NewEvent,
  stampAfter,
  type StreamHead,
} from './event-store.ts';
import { retry } from '../retry.ts';
import { transaction } from '../postgres/transaction.ts';

/** A domain event as deciders produce them. */
export type DecidedEvent = { type: string; data: object; timestamp: string };

/** How one aggregate type is loaded, folded and projected. */
export type AggregateAdapter<S, E extends DecidedEvent> = {
  aggregateType: string;
  initialState: () => S;
  evolve: (state: S, event: E) => S;
  /**
   * The state as of `head.version`, from the inline read model; null when none.
   * With `lock`, the stream row is locked (FOR UPDATE) until the transaction ends.
   */
  load: (connection: CommonQueryMethods, id: string, lock: boolean) => Promise<{ state: S; head: StreamHead } | null>;
  /** Writes the read model for the new state, in the append's transaction. */
  save: (transaction: CommonQueryMethods, id: string, state: S, stored: readonly StoredEvent[]) => Promise<void>;
  /** Per decided event, the index of the event of the same decision that caused it (→ metadata.causation_id), or null. */
  causes?: (events: readonly E[]) => readonly (number | null)[];
};

/** What a command handler returns. */
export type CommandResult<S> = { state: S; events: StoredEvent[]; head: StreamHead };

/** Extra work done in the same transaction, after the append (credentials, counters). */
export type InTransaction<S> = (transaction: CommonQueryMethods, result: CommandResult<S>, before: S) => Promise<void>;

/**
 * Decided events as rows to append. Ids are assigned here, before the insert, so a derived
 * event can name its cause (metadata.causation_id).
 */
export function toNewEvents<S, E extends DecidedEvent>(
  adapter: AggregateAdapter<S, E>,
  decided: readonly E[],
  context: { metadata: EventMetadata; source: string },
): NewEvent[] {
  const ids = decided.map(() => randomUUID());
  const causes = adapter.causes?.(decided) ?? [];
  return decided.map((event, i) => {
    const cause = causes[i];
    return {
      event_id: ids[i]!,
      event_type: event.type,
      data: event.data as Record<string, unknown>,
      metadata: cause === null || cause === undefined
        ? context.metadata
        : { ...context.metadata, causation_id: ids[cause]! },
      timestamp: event.timestamp,
      source: context.source,
    };
  });
}

const MAX_ATTEMPTS = 8;

/**
 * Runs `decide` against the aggregate and commits its events. The first attempt is
 * optimistic; after a version conflict the retry locks the stream row while it decides,
 * so a hot stream (many concurrent writers) still makes progress instead of failing.
 */
export async function handleCommand<S, E extends DecidedEvent>(
  pool: DatabasePool,
  store: EventStore,
  adapter: AggregateAdapter<S, E>,
  id: string,
  decide: (state: S) => E[],
  context: { metadata: EventMetadata; source: string },
  inTransaction?: InTransaction<S>,
): Promise<CommandResult<S>> {
  // a conflict is retried at once: the retry waits for the stream row's lock, not a timer
  return retry(
    (attempt) =>
      transaction(pool, async (transaction) => {
        const loaded = (await adapter.load(transaction, id, attempt > 1)) ??
          { state: adapter.initialState(), head: await store.head(transaction, adapter.aggregateType, id) };
        // stamped as the append will store them (never before the head's last event), then folded
        const decided = stampAfter(loaded.head, decide(loaded.state));
        if (decided.length === 0) return { state: loaded.state, events: [], head: loaded.head };
        const state = decided.reduce(adapter.evolve, loaded.state);
        const stored = await store.append(
          transaction,
          adapter.aggregateType,
          id,
          loaded.head,
          toNewEvents(adapter, decided, context),
        );
        const result = { state, events: stored, head: headAfter(stored) };
        await adapter.save(transaction, id, state, stored);
        if (inTransaction) await inTransaction(transaction, result, loaded.state);
        return result;
      }),
    { attempts: MAX_ATTEMPTS, shouldRetry: (error) => error instanceof ConcurrencyError },
  );
}
