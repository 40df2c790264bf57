// The gap-safe read of the global event log, shared by EventListeners, ProjectionBuilders,
// the HTTP feed and the SSE stream (DESIGN.md "Listeners and feeds").
//
// A sequence value is taken at INSERT, not at COMMIT, so following global_position alone
// can pass an event whose transaction commits later. Instead: read only events whose
// transaction id is below the current snapshot's xmin (every such transaction has ended),
// in (transaction_id, global_position) order, and remember that pair. A transaction that
// commits later always has an id at or above that xmin, so it sorts after the cursor.
//
// Version order per aggregate: an append compares-and-sets the stream's version, so version
// n+1 commits after version n, but its transaction id can be smaller (its transaction got
// its id first). When a batch holds an event whose earlier versions sort later in the feed,
// those are handed out first and remembered in the cursor's `ahead` list until the cursor
// passes them, so each aggregate's events come out in version order, each exactly once.
import { Buffer } from 'node:buffer';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';

/** The channel the events table notifies (one payload-free NOTIFY per INSERT statement). */
export const EVENTS_CHANNEL = 'devicetrail_events';

/** A handed-out event that sorts after the cursor: [transaction_id, global_position]. */
export type AheadEntry = readonly [transactionId: string, position: number];

/** A position in the feed: every event up to (transactionId, position) and those in `ahead`. */
export type FeedCursor = { transactionId: string; position: number; ahead: readonly AheadEntry[] };

/** The cursor before the first event. */
export const START_CURSOR: FeedCursor = { transactionId: '0', position: 0, ahead: [] };

/**
 * Which events a read returns; the cursor still moves past the others. `types` and
 * `typePrefixes` together: an event whose type is one of `types` or starts with one of
 * `typePrefixes` (either given alone: only that list; both empty: no event).
 */
export type FeedFilter = {
  types?: readonly string[] | undefined;
  typePrefixes?: readonly string[] | undefined;
  aggregateType?: string | undefined;
  aggregateId?: string | undefined;
};

/** One event of a batch with the cursor that stands right after it. */
export type FeedItem = { event: StoredEvent; cursor: FeedCursor };

/** What one read returns. */
export type FeedBatch = {
  items: FeedItem[];
  /** The cursor after the batch: past the last item, or up to the horizon when the read reached it. */
  cursor: FeedCursor;
  /** A whole page was read: more events may be ready right away. */
  full: boolean;
  /** Committed events wait above the horizon because an older transaction is still open. */
  heldBack: boolean;
};

/** The JSON an event is served as (feed, stream, webhooks): the row without internals. */
export type FeedEventJson = Omit<StoredEvent, 'hash' | 'transaction_id'>;

const MAX_AHEAD = 10_000;

const keyOf = (transactionId: string, position: number) => [BigInt(transactionId), position] as const;

/** Orders two (transaction_id, global_position) pairs. */
export function comparePositions(a: AheadEntry, b: AheadEntry): number {
  const [at, ap] = keyOf(a[0], a[1]);
  const [bt, bp] = keyOf(b[0], b[1]);
  if (at !== bt) return at < bt ? -1 : 1;
  return ap === bp ? 0 : ap < bp ? -1 : 1;
}

/** The largest xid8 (unsigned 64-bit): a larger transaction id would make PostgreSQL fail the read (issue #16). */
const MAX_XID8 = 18_446_744_073_709_551_615n;

const transactionIdText = z.string().refine(
  (t) => /^\d{1,20}$/.test(t) && BigInt(t) <= MAX_XID8,
  'a transaction id (xid8: 0 to 2^64 - 1)',
);
const positionNumber = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const cursorJson = z.object({
  t: transactionIdText,
  p: positionNumber,
  a: z.array(z.tuple([transactionIdText, positionNumber])).max(MAX_AHEAD).optional(),
}).strict();

/** The opaque string form of a cursor (base64url JSON). */
export function encodeCursor(cursor: FeedCursor): string {
  const json = cursor.ahead.length === 0
    ? { t: cursor.transactionId, p: cursor.position }
    : { t: cursor.transactionId, p: cursor.position, a: cursor.ahead };
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

/** Parses a cursor string; null when it is not one. */
export function decodeCursor(text: string): FeedCursor | null {
  if (text.length > 200_000 || !/^[A-Za-z0-9_-]+$/.test(text)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  const result = cursorJson.safeParse(parsed);
  if (!result.success) return null;
  return { transactionId: result.data.t, position: result.data.p, ahead: result.data.a ?? [] };
}

/** The event as served to clients. */
export function feedEventJson(event: StoredEvent): FeedEventJson {
  const { hash: _hash, transaction_id: _tx, ...rest } = event;
  return rest;
}

/**
 * Remembers, per aggregate, the highest version handed out with all earlier ones, so the
 * predecessor check can be skipped for aggregates whose events arrive in order. Recorded
 * only by reads that keep whole streams (no type filter). Bounded: the oldest entries are
 * forgotten first.
 */
export class KnownVersions {
  readonly #max: number;
  readonly #map = new Map<string, number>();
  constructor(max = 100_000) {
    this.#max = max;
  }
  /** The highest contiguous version handed out, if remembered. */
  get(key: string): number | undefined {
    return this.#map.get(key);
  }
  /** Records that every version up to `version` was handed out. */
  set(key: string, version: number): void {
    this.#map.delete(key);
    this.#map.set(key, version);
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value;
      if (oldest !== undefined) this.#map.delete(oldest);
    }
  }
}

const eventColumns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

const horizonRow = z.object({ horizon: z.string() });
/** A page row: the horizon and held-back flag of the read, and an event (all null when none). */
const pageRow = z.object({ page_horizon: z.string(), page_held: z.boolean(), event_id: z.string().nullable() })
  .passthrough();

const likePrefix = (prefix: string) => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function filterConditions(filter: FeedFilter) {
  const conditions = [];
  if (filter.typePrefixes !== undefined) {
    const patterns = sql.array(filter.typePrefixes.map(likePrefix), 'text');
    conditions.push(
      sql.fragment`(event_type = ANY(${
        sql.array([...(filter.types ?? [])], 'text')
      }) OR event_type LIKE ANY(${patterns}))`,
    );
  } else if (filter.types !== undefined) {
    conditions.push(sql.fragment`event_type = ANY(${sql.array([...filter.types], 'text')})`);
  }
  if (filter.aggregateType !== undefined) conditions.push(sql.fragment`aggregate_type = ${filter.aggregateType}`);
  if (filter.aggregateId !== undefined) {
    conditions.push(sql.fragment`aggregate_id = ${filter.aggregateId}`);
    return conditions;
  }
  // A feed is read in feed order through events_feed_idx. A type or aggregate-type condition
  // matches most of a day's events, yet the planner, which cannot know the horizon, may
  // choose the index on that column and read the whole day partition for a page of a few
  // hundred events (measured: 100 ms per read at 70,000 events, growing all day). `IS TRUE`
  // (same meaning: these columns are NOT NULL) keeps those indexes out of it; one device's
  // feed (aggregateId) is narrow, and its aggregate index is the right one.
  return conditions.map((condition) => sql.fragment`(${condition}) IS TRUE`);
}

/**
 * Whether `filter` selects `event`: the in-memory twin of `filterConditions`, for readers that
 * fan one unfiltered read out to many filtered subscribers (infra/realtime/feed-hub.ts).
 */
export function matchesFilter(filter: FeedFilter | undefined, event: StoredEvent): boolean {
  if (filter === undefined) return true;
  if (filter.aggregateType !== undefined && event.aggregate_type !== filter.aggregateType) return false;
  if (filter.aggregateId !== undefined && event.aggregate_id !== filter.aggregateId) return false;
  if (filter.typePrefixes !== undefined) {
    return (filter.types ?? []).includes(event.event_type) ||
      filter.typePrefixes.some((prefix) => event.event_type.startsWith(prefix));
  }
  return filter.types === undefined || filter.types.includes(event.event_type);
}

/** The transaction-id horizon now: every transaction below it has ended. */
export async function readHorizon(connection: CommonQueryMethods): Promise<string> {
  return connection.oneFirst(sql.type(horizonRow)`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon`);
}

const aheadRow = z.object({ transaction_id: z.string(), global_position: z.number() });

/**
 * A cursor standing at "now": every event committed so far counts as handed out, every
 * later commit comes after it. That is the horizon, plus the events already committed above
 * it (an older transaction is still open) in `ahead`.
 */
export async function headCursor(connection: CommonQueryMethods): Promise<FeedCursor> {
  const horizon = await readHorizon(connection);
  const committed = await connection.any(sql.type(aheadRow)`
    SELECT transaction_id::text AS transaction_id, global_position FROM events
     WHERE transaction_id >= ${horizon}::xid8 ORDER BY events.transaction_id, events.global_position LIMIT ${
    MAX_AHEAD + 1
  }`);
  // more than a cursor can carry: hand those few out again rather than risk a gap
  const ahead = committed.length > MAX_AHEAD
    ? []
    : committed.map((r): AheadEntry => [r.transaction_id, r.global_position]);
  return { transactionId: horizon, position: 0, ahead };
}

const aggregateKey = (e: { aggregate_type: string; aggregate_id: string }) =>
  `${e.aggregate_type}\u0000${e.aggregate_id}`;

/**
 * The statement of one feed read: the horizon, whether committed events wait above it, and
 * up to `limit` events after `cursor` below it. One statement, one snapshot. The inner ORDER
 * BY names the table's columns (the select list has transaction_id as text); the outer one
 * keeps that order whatever the join's plan. Exported for the test that checks how much of
 * the log it reads.
 */
export function feedPageQuery(cursor: FeedCursor, limit: number, filter: FeedFilter = {}) {
  const conditions = [
    sql.fragment`(transaction_id, global_position) > (${cursor.transactionId}::xid8, ${cursor.position}::int8)`,
    sql.fragment`transaction_id < h.horizon`,
    ...filterConditions(filter),
  ];
  return sql.type(pageRow)`
    WITH h AS (
      -- the first event at or above the horizon, found through events_feed_idx (an EXISTS
      -- would let the planner drop the ORDER BY and scan a whole partition to prove there is none)
      SELECT x.horizon, (SELECT transaction_id FROM events WHERE ${
    sql.join([sql.fragment`transaction_id >= x.horizon`, ...filterConditions(filter)], sql.fragment` AND `)
  }
                          ORDER BY transaction_id, global_position LIMIT 1) IS NOT NULL AS held
        FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) x
    )
    SELECT h.horizon::text AS page_horizon, h.held AS page_held, e.*
      FROM h LEFT JOIN LATERAL (
        SELECT ${eventColumns} FROM events WHERE ${sql.join(conditions, sql.fragment` AND `)}
        ORDER BY events.transaction_id, events.global_position LIMIT ${limit}
      ) e ON true
     ORDER BY e.transaction_id::xid8, e.global_position`;
}

/** Reads the next batch after `cursor`, gap-safe and in per-aggregate version order. */
export async function readFeedBatch(
  connection: CommonQueryMethods,
  cursor: FeedCursor,
  options: { limit: number; filter?: FeedFilter; known?: KnownVersions },
): Promise<FeedBatch> {
  const filter = options.filter ?? {};
  const page = await connection.any(feedPageQuery(cursor, options.limit, filter));
  const horizon = page[0]!.page_horizon;
  const held = page[0]!.page_held;
  const rows: StoredEvent[] = [];
  for (const row of page) {
    if (row.event_id === null) continue;
    const { page_horizon: _h, page_held: _held, ...event } = row;
    rows.push(event as StoredEvent);
  }
  const full = rows.length === options.limit;

  const last = rows[rows.length - 1];
  const scanEnd: AheadEntry = last === undefined
    ? [cursor.transactionId, cursor.position]
    : [last.transaction_id, last.global_position];
  const alreadyOut = new Set(cursor.ahead.map(([, p]) => p));
  const fresh = rows.filter((r) => !alreadyOut.has(r.global_position));

  // Group the fresh events per aggregate and find those whose earlier versions may sort later.
  const groups = new Map<string, StoredEvent[]>();
  for (const event of fresh) {
    const key = aggregateKey(event);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [event]);
    else group.push(event);
  }
  const uncertain: { type: string; id: string; below: number }[] = [];
  for (const [key, group] of groups) {
    group.sort((a, b) => a.aggregate_version - b.aggregate_version);
    const first = group[0]!;
    const contiguous = group.every((e, i) => i === 0 || e.aggregate_version === group[i - 1]!.aggregate_version + 1);
    const known = options.known?.get(key);
    const certain = contiguous && (first.aggregate_version === 1 || known === first.aggregate_version - 1);
    if (!certain) {
      uncertain.push({
        type: first.aggregate_type,
        id: first.aggregate_id,
        below: group[group.length - 1]!.aggregate_version,
      });
    }
  }
  if (uncertain.length > 0) {
    const predecessors = await connection.any(sql.type(storedEventRow)`
      SELECT ${eventColumns} FROM events
        JOIN ${
      sql.unnest(uncertain.map((u) => [u.type, u.id, u.below]), ['text', 'text', 'int8'])
    } AS g(g_type, g_id, g_below)
          ON aggregate_type = g.g_type AND aggregate_id = g.g_id AND aggregate_version < g.g_below
       WHERE ${
      sql.join([
        sql.fragment`(transaction_id, global_position) > (${scanEnd[0]}::xid8, ${scanEnd[1]}::int8)`,
        ...filterConditions(filter),
      ], sql.fragment` AND `)
    }`);
    for (const event of predecessors) {
      if (alreadyOut.has(event.global_position)) continue;
      groups.get(aggregateKey(event))?.push(event);
    }
    for (const key of new Set(uncertain.map((u) => `${u.type}\u0000${u.id}`))) {
      groups.get(key)?.sort((a, b) => a.aggregate_version - b.aggregate_version);
    }
  }

  // Walk the page in feed order; before each event, hand out its aggregate's earlier versions.
  let base: AheadEntry = [cursor.transactionId, cursor.position];
  const ahead = new Map<number, AheadEntry>(cursor.ahead.map((entry) => [entry[1], entry]));
  const handedOut = new Set<number>();
  const items: FeedItem[] = [];
  const prune = () => {
    for (const [position, entry] of ahead) if (comparePositions(entry, base) <= 0) ahead.delete(position);
  };
  const snapshot = (): FeedCursor => ({ transactionId: base[0], position: base[1], ahead: [...ahead.values()] });
  for (const row of rows) {
    const group = groups.get(aggregateKey(row)) ?? [];
    if (!alreadyOut.has(row.global_position) && !handedOut.has(row.global_position)) {
      for (const earlier of group) {
        if (earlier.aggregate_version >= row.aggregate_version) break;
        if (handedOut.has(earlier.global_position)) continue;
        handedOut.add(earlier.global_position);
        ahead.set(earlier.global_position, [earlier.transaction_id, earlier.global_position]);
        items.push({ event: earlier, cursor: snapshot() });
      }
      handedOut.add(row.global_position);
      base = [row.transaction_id, row.global_position];
      prune();
      items.push({ event: row, cursor: snapshot() });
    } else {
      base = [row.transaction_id, row.global_position];
      prune();
    }
  }
  // a filter by aggregate keeps whole streams, so what was handed out is still every version up to the top
  if (options.known !== undefined && filter.types === undefined && filter.typePrefixes === undefined) {
    for (const [key, group] of groups) {
      const top = group[group.length - 1];
      if (top !== undefined && group.every((e) => handedOut.has(e.global_position))) {
        options.known.set(key, top.aggregate_version);
      }
    }
  }
  if (!full && comparePositions([horizon, 0], base) > 0) base = [horizon, 0];
  prune();
  const heldBack = !full && held;
  return { items, cursor: snapshot(), full, heldBack };
}

const lagRow = z.object({
  events_behind: z.number(),
  oldest: z.string().nullable(),
  age_seconds: z.number().nullable(),
});

/** How far behind a cursor is: events not yet handed out (counted up to 1,000,000) and the age of the oldest of them. */
export type FeedLag = { events_behind: number; seconds_behind: number; oldest_pending_at: string | null };

/** Lag of a cursor against the log (or the events a filter selects). */
export async function feedLag(
  connection: CommonQueryMethods,
  cursor: FeedCursor,
  filter: FeedFilter = {},
): Promise<FeedLag> {
  const after = sql.join([
    sql.fragment`(transaction_id, global_position) > (${cursor.transactionId}::xid8, ${cursor.position}::int8)`,
    sql.fragment`global_position <> ALL(${sql.array(cursor.ahead.map(([, p]) => p), 'int8')})`,
    ...filterConditions(filter),
  ], sql.fragment` AND `);
  const row = await connection.one(sql.type(lagRow)`
    SELECT count(*)::int8 AS events_behind, min(p."timestamp") AS oldest,
           EXTRACT(EPOCH FROM (now() - min(p."timestamp")))::float8 AS age_seconds
      FROM (SELECT "timestamp" FROM events WHERE ${after} LIMIT 1000000) p`);
  return {
    events_behind: row.events_behind,
    seconds_behind: row.age_seconds === null ? 0 : Math.max(0, Math.round(row.age_seconds * 1000) / 1000),
    oldest_pending_at: row.oldest,
  };
}
