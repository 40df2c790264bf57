// The event store: append with optimistic concurrency (compare-and-set on `streams`),
// and reads in version order. One operation per function; rows validated by zod.
import { randomUUID } from 'node:crypto';
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { eventHash, GENESIS_HASH } from './event-hash.ts';
import { createPartitionCache, type PartitionCache } from './partitions.ts';
import { type EventMetadata, type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';

/** An event to append. */
export type NewEvent = {
  event_type: string;
  data: Record<string, unknown>;
  metadata: EventMetadata;
  timestamp: string;
  source: string;
  event_id?: string;
};

/** The head of a stream: its version and last hash (version 0 for a new stream). */
export type StreamHead = { version: number; last_hash: string };

/** Thrown when another writer appended to the stream first. */
export class ConcurrencyError extends Error {
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly expectedVersion: number;
  constructor(aggregateType: string, aggregateId: string, expectedVersion: number) {
    super(`${aggregateType} ${aggregateId} is no longer at version ${expectedVersion}`);
    this.name = 'ConcurrencyError';
    this.aggregateType = aggregateType;
    this.aggregateId = aggregateId;
    this.expectedVersion = expectedVersion;
  }
}

const headRow = z.object({ version: z.number(), last_hash: z.string() });
const versionRow = z.object({ version: z.number() });

const eventColumns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

/** An event row ready to insert: versions numbered after `expected`, hashes chained. */
export type PreparedEvent = Omit<StoredEvent, 'global_position' | 'transaction_id'>;

/** Numbers and hashes the events of one append (the chain continues from `expected.last_hash`). */
export function prepareEvents(
  aggregateType: string,
  aggregateId: string,
  expected: StreamHead,
  events: readonly NewEvent[],
): PreparedEvent[] {
  let previous = expected.last_hash;
  return events.map((event, i) => {
    const row: PreparedEvent = {
      event_id: event.event_id ?? randomUUID(),
      event_type: event.event_type,
      aggregate_type: aggregateType,
      aggregate_id: aggregateId,
      aggregate_version: expected.version + i + 1,
      data: event.data,
      metadata: event.metadata,
      timestamp: new Date(event.timestamp).toISOString(),
      source: event.source,
      hash: '',
    };
    row.hash = eventHash(previous, row);
    previous = row.hash;
    return row;
  });
}

/** Reads options: half-open bounds on version and time. */
export type ReadStreamOptions = { afterVersion?: number; since?: string; until?: string; limit?: number };

/** The event store bound to one pool. */
export type EventStore = ReturnType<typeof createEventStore>;

/** Creates the event store for a pool. */
export function createEventStore(pool: DatabasePool, partitions: PartitionCache = createPartitionCache()) {
  return {
    pool,
    partitions,

    /** Told about events appended by other writers (the batch writer), for metrics; no-op here. */
    recordAppended(_events: readonly StoredEvent[]): void {},

    /** The stream's head, or version 0 with the genesis hash when it does not exist. */
    async head(connection: CommonQueryMethods, aggregateType: string, aggregateId: string): Promise<StreamHead> {
      const row = await connection.maybeOne(sql.type(headRow)`
        SELECT version, last_hash FROM streams WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId}`);
      return row ?? { version: 0, last_hash: GENESIS_HASH };
    },

    /**
     * Appends events at `expected.version + 1 …` inside the caller's transaction.
     * Throws ConcurrencyError when the stream moved on. Returns the stored rows.
     */
    async append(
      transaction: CommonQueryMethods,
      aggregateType: string,
      aggregateId: string,
      expected: StreamHead,
      events: readonly NewEvent[],
    ): Promise<StoredEvent[]> {
      if (events.length === 0) return [];
      const rows = prepareEvents(aggregateType, aggregateId, expected, events);
      const last = rows[rows.length - 1]!;
      const moved = expected.version === 0
        ? await transaction.maybeOne(sql.type(versionRow)`
            INSERT INTO streams (aggregate_type, aggregate_id, version, last_hash)
            VALUES (${aggregateType}, ${aggregateId}, ${last.aggregate_version}, ${last.hash})
            ON CONFLICT DO NOTHING RETURNING version`)
        : await transaction.maybeOne(sql.type(versionRow)`
            UPDATE streams SET version = ${last.aggregate_version}, last_hash = ${last.hash}, updated_at = now()
             WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId} AND version = ${expected.version}
            RETURNING version`);
      if (moved === null) throw new ConcurrencyError(aggregateType, aggregateId, expected.version);
      await partitions.ensure(transaction, rows.map((r) => r.timestamp));
      const inserted = await transaction.many(sql.type(storedEventRow)`
        INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
        SELECT * FROM ${
        sql.unnest(
          rows.map((
            r,
          ) => [
            r.event_id,
            r.event_type,
            r.aggregate_type,
            r.aggregate_id,
            r.aggregate_version,
            JSON.stringify(r.data),
            JSON.stringify(r.metadata),
            r.timestamp,
            r.source,
            r.hash,
          ]),
          ['uuid', 'text', 'text', 'text', 'int8', 'jsonb', 'jsonb', 'timestamptz', 'text', 'text'],
        )
      }
        RETURNING ${eventColumns}`);
      return [...inserted].sort((a, b) => a.aggregate_version - b.aggregate_version);
    },

    /** One aggregate's events in version order, optionally bounded by version and time. */
    async readStream(
      aggregateType: string,
      aggregateId: string,
      options: ReadStreamOptions = {},
      connection: CommonQueryMethods = pool,
    ): Promise<readonly StoredEvent[]> {
      const conditions = [sql.fragment`aggregate_type = ${aggregateType}`, sql.fragment`aggregate_id = ${aggregateId}`];
      if (options.afterVersion !== undefined) {
        conditions.push(sql.fragment`aggregate_version > ${options.afterVersion}`);
      }
      if (options.since !== undefined) conditions.push(sql.fragment`"timestamp" >= ${options.since}::timestamptz`);
      if (options.until !== undefined) conditions.push(sql.fragment`"timestamp" <= ${options.until}::timestamptz`);
      const limit = options.limit === undefined ? sql.fragment`` : sql.fragment`LIMIT ${options.limit}`;
      return connection.any(sql.type(storedEventRow)`
        SELECT ${eventColumns} FROM events WHERE ${sql.join(conditions, sql.fragment` AND `)}
        ORDER BY aggregate_version ${limit}`);
    },
  };
}
