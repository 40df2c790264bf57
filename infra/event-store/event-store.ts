// The event store: append with optimistic concurrency (compare-and-set on `streams`), in one
// statement for one stream or many, and reads in version order. One operation per function;
// row shapes at module scope.
import { randomUUID } from 'node:crypto';
import {
  type CommonQueryMethods,
  type DatabasePool,
  type FragmentSqlToken,
  type IdentifierSqlToken,
  sql,
} from 'slonik';
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

/** A stream's head as `streams` stores it. */
export const streamHeadRow = z.object({
  version: z.number(),
  last_hash: z.string(),
  last_timestamp: z.string().nullable(),
});

/**
 * The head of a stream: its version, last hash and the latest timestamp of its events (version
 * 0, the genesis hash and null for a new stream). Read together, so an append whose
 * compare-and-set on `version` holds knows the timestamp its first event must not precede.
 */
export type StreamHead = z.infer<typeof streamHeadRow>;

/** The head of a stream that does not exist yet. */
export const newStreamHead = (): StreamHead => ({ version: 0, last_hash: GENESIS_HASH, last_timestamp: null });

/** The head a stream has after `stored` (non-empty, in version order) were appended. */
export function headAfter(
  stored: readonly Pick<StoredEvent, 'aggregate_version' | 'hash' | 'timestamp'>[],
): StreamHead {
  const last = stored[stored.length - 1]!;
  return { version: last.aggregate_version, last_hash: last.hash, last_timestamp: last.timestamp };
}

/**
 * Events as the append stamps them: each timestamp raised to the latest before it in the
 * stream (the head's, then the events' own), so timestamps never decrease in version order
 * (DESIGN "Event row"). A command decides with the instant its request read the clock, which
 * may lie before an event another request appended meanwhile; it is stamped with that event's
 * instant instead (the two share it: replay treats events sharing an instant as one change).
 * The writers stamp before they fold, so the state they keep is the fold of what is stored.
 * Returns `events` itself when nothing needed raising.
 */
export function stampAfter<T extends { timestamp: string }>(head: StreamHead, events: readonly T[]): readonly T[] {
  let floorMs = head.last_timestamp === null ? -Infinity : Date.parse(head.last_timestamp);
  let stamped: T[] | null = null;
  for (const [i, event] of events.entries()) {
    const ms = Date.parse(event.timestamp);
    if (ms < floorMs) {
      stamped ??= [...events];
      stamped[i] = { ...event, timestamp: new Date(floorMs).toISOString() };
    } else floorMs = ms;
  }
  return stamped ?? events;
}

const appendedRow = storedEventRow.pick({ event_id: true, global_position: true, transaction_id: true });

const eventColumns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

/** An event row ready to insert: versions numbered after `expected`, hashes chained. */
export type PreparedEvent = Omit<StoredEvent, 'global_position' | 'transaction_id'>;

/**
 * Numbers, stamps and hashes the events of one append: versions after `expected.version`,
 * timestamps never before `expected.last_timestamp` nor each other's (stampAfter), the chain
 * continued from `expected.last_hash` over the timestamps as stored.
 */
export function prepareEvents(
  aggregateType: string,
  aggregateId: string,
  expected: StreamHead,
  events: readonly NewEvent[],
): PreparedEvent[] {
  let previous = expected.last_hash;
  return stampAfter(expected, events).map((event, i) => {
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

/** What a read-model write joined to an append may read: the streams whose compare-and-set held. */
export type ReadModelWrite = (appended: IdentifierSqlToken) => FragmentSqlToken;

/** One read-model write, or several (each its own statement in the append's WITH). */
export type ReadModelWrites = ReadModelWrite | readonly ReadModelWrite[];

/**
 * The one append statement, for the events of one stream or of many (each stream's events as
 * prepareEvents numbered and stamped them after its expected head): compare-and-set every
 * stream's version, and its last timestamp not after the first new event's (a stream expected
 * at version 0 is created, unless another writer created it first), insert the events of the
 * streams that moved, and run `readModel` (one write, or several: the devices read model and a
 * report's metrics sample, issue #15), which reads
 * `appended` (aggregate_type, aggregate_id of those streams), in the same statement. The
 * batch travels as JSON unpacked by PostgreSQL (jsonb_to_recordset): one serialisation,
 * nothing for the driver to escape. A row per inserted event; a stream that lost its
 * compare-and-set has none.
 */
export function appendStatement(streams: readonly (readonly PreparedEvent[])[], readModel?: ReadModelWrites) {
  const heads = streams.map((rows) => {
    const last = rows[rows.length - 1]!;
    return {
      aggregate_type: last.aggregate_type,
      aggregate_id: last.aggregate_id,
      expected: rows[0]!.aggregate_version - 1,
      version: last.aggregate_version,
      last_hash: last.hash,
      first_timestamp: rows[0]!.timestamp,
      last_timestamp: last.timestamp,
    };
  });
  const appended = sql.identifier(['appended']);
  const writes = readModel === undefined ? [] : typeof readModel === 'function' ? [readModel] : readModel;
  const alsoWrite = writes.length === 0 ? sql.fragment`` : sql.join(
    writes.map((write, i) => sql.fragment`, ${sql.identifier([`read_model_${i}`])} AS (${write(appended)})`),
    sql.fragment``,
  );
  return sql.type(appendedRow)`
    WITH head AS (
      -- the LIMIT is the planner's row count (a recordset is otherwise guessed at 100 rows, and
      -- the compare-and-set below then scans every stream instead of looking up its own)
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(heads)}::jsonb)
        AS h(aggregate_type text, aggregate_id text, expected int8, version int8, last_hash text,
             first_timestamp timestamptz, last_timestamp timestamptz)
       LIMIT ${heads.length}
    ),
    moved AS (
      UPDATE streams s SET version = h.version, last_hash = h.last_hash, last_timestamp = h.last_timestamp,
             updated_at = now()
        FROM head h
       WHERE s.aggregate_type = h.aggregate_type AND s.aggregate_id = h.aggregate_id AND s.version = h.expected
         -- never stamped before the stream's last event: events prepared from a head without its
         -- timestamp are refused like a lost compare-and-set (the writer reads the head again)
         AND (s.last_timestamp IS NULL OR s.last_timestamp <= h.first_timestamp)
      RETURNING s.aggregate_type, s.aggregate_id
    ),
    created AS (
      INSERT INTO streams (aggregate_type, aggregate_id, version, last_hash, last_timestamp)
      SELECT aggregate_type, aggregate_id, version, last_hash, last_timestamp FROM head WHERE expected = 0
      ON CONFLICT DO NOTHING
      RETURNING aggregate_type, aggregate_id
    ),
    ${appended} AS (SELECT * FROM moved UNION ALL SELECT * FROM created),
    inserted AS (
      INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
      SELECT e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.aggregate_version, e.data, e.metadata, e."timestamp", e.source, e.hash
        FROM jsonb_to_recordset(${JSON.stringify(streams.flat())}::jsonb)
          AS e(event_id uuid, event_type text, aggregate_type text, aggregate_id text, aggregate_version int8,
               data jsonb, metadata jsonb, "timestamp" timestamptz, source text, hash text)
       WHERE (e.aggregate_type, e.aggregate_id) IN (SELECT aggregate_type, aggregate_id FROM ${appended})
      RETURNING event_id, global_position, transaction_id
    )${alsoWrite}
    SELECT event_id::text AS event_id, global_position, transaction_id::text AS transaction_id FROM inserted`;
}

/** Reads options: half-open bounds on version and time. */
export type ReadStreamOptions = { afterVersion?: number; since?: string; until?: string; limit?: number };

/** The event store bound to one pool. */
export type EventStore = ReturnType<typeof createEventStore>;

/** Creates the event store for a pool. */
export function createEventStore(pool: DatabasePool, partitions: PartitionCache = createPartitionCache()) {
  /**
   * Appends the prepared events of one or many streams (none empty) in one statement
   * (appendStatement), `readModel` written in it. Per stream, its stored events, or null when
   * the stream had moved on: nothing of it was written. Not counted by instrumentStore: a
   * caller other than `append` tells `recordAppended`.
   */
  async function appendStreams(
    connection: CommonQueryMethods,
    streams: readonly (readonly PreparedEvent[])[],
    readModel?: ReadModelWrites,
  ): Promise<(StoredEvent[] | null)[]> {
    const asked = await partitions.ensure(connection, streams.flatMap((rows) => rows.map((row) => row.timestamp)));
    const inserted = await connection.any(appendStatement(streams, readModel));
    const positions = new Map(inserted.map((row) => [row.event_id, row]));
    // a partition created in the caller's transaction goes when it rolls back, as it will after
    // append's ConcurrencyError: ask again next time
    if (asked.length > 0 && streams.some((rows) => !positions.has(rows[0]!.event_id))) {
      for (const day of asked) partitions.forget(day);
    }
    return streams.map((rows) =>
      positions.has(rows[0]!.event_id)
        ? rows.map((row) => {
          const { global_position, transaction_id } = positions.get(row.event_id)!;
          return { ...row, global_position, transaction_id };
        })
        : null
    );
  }

  return {
    pool,
    partitions,

    /** Told about events appended by other writers (the batch writer), for metrics; no-op here. */
    recordAppended(_events: readonly StoredEvent[]): void {},

    /** The stream's head, or newStreamHead() when it does not exist. */
    async head(connection: CommonQueryMethods, aggregateType: string, aggregateId: string): Promise<StreamHead> {
      const row = await connection.maybeOne(sql.type(streamHeadRow)`
        SELECT version, last_hash, last_timestamp FROM streams
         WHERE aggregate_type = ${aggregateType} AND aggregate_id = ${aggregateId}`);
      return row ?? newStreamHead();
    },

    /**
     * Appends events at `expected.version + 1 …` inside the caller's transaction: the batch of
     * one stream, stamped no earlier than `expected.last_timestamp` (stampAfter). Throws
     * ConcurrencyError when the stream moved on. Returns the stored rows.
     */
    async append(
      transaction: CommonQueryMethods,
      aggregateType: string,
      aggregateId: string,
      expected: StreamHead,
      events: readonly NewEvent[],
    ): Promise<StoredEvent[]> {
      if (events.length === 0) return [];
      const [stored] = await appendStreams(transaction, [prepareEvents(aggregateType, aggregateId, expected, events)]);
      if (!stored) throw new ConcurrencyError(aggregateType, aggregateId, expected.version);
      return stored;
    },

    appendStreams,

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
