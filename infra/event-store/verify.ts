// Chain verification: per aggregate, recompute each event's hash from the previous one and
// compare with the stored hash. The first event chains from GENESIS_HASH, or, after
// retention dropped its beginning, from the retention anchor (the hash of the last dropped
// event). Reports each aggregate's first broken link and why: altered content, a missing
// version (gap), an event moved to another version (reordered), a stream head that does not
// match its last event.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { eventHash, GENESIS_HASH } from './event-hash.ts';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';
import { readAnchors, type RetentionAnchor } from './retention-horizon.ts';
import { TIMESTAMP_SLACK_MS } from './snapshots.ts';
import { streamHeadRow } from './event-store.ts';
import { STORED_BYTES } from '../postgres/pool.ts';

const STREAM_CHUNK = 500;
const PAGE = 5_000;

const streamRow = streamHeadRow.pick({ version: true, last_hash: true }).extend({
  aggregate_type: z.string(),
  aggregate_id: z.string(),
});
const countRow = z.object({ n: z.number() });
const orphanRow = z.object({ aggregate_type: z.string(), aggregate_id: z.string(), n: z.number() });
const hashRow = storedEventRow.pick({ aggregate_id: true, aggregate_version: true, hash: true });

const columns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

/** Why a chain is broken. */
export type BreakReason = 'altered' | 'reordered' | 'gap' | 'duplicate' | 'head_mismatch' | 'no_stream';

/** An aggregate's first broken link. */
export type ChainBreak = {
  aggregate_type: string;
  aggregate_id: string;
  /** The event that does not match (null when the break is a missing event at the end). */
  event_id: string | null;
  version: number | null;
  reason: BreakReason;
  message: string;
};

/** What a verification covered and found. */
export type VerifyResult = { aggregates: number; events: number; since: string | null; breaks: ChainBreak[] };

/** Options: one aggregate id only; only events from an instant on; progress over aggregates. */
export type VerifyOptions = {
  aggregate?: string | undefined;
  since?: string | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
};

type Stream = z.infer<typeof streamRow>;

/** Where an aggregate's first checked event must chain from. */
type Start = { version: number; hash: string } | null;

/**
 * Checks one aggregate's events (version order) against its start and its stream head; returns
 * the first break or null. `start` null: the events before the first one are missing and no
 * anchor covers them. `lookup` gives the full stream's hashes to tell "reordered" from "altered".
 */
export async function checkChain(
  stream: Stream,
  events: readonly StoredEvent[],
  start: Start,
  anchors: readonly RetentionAnchor[],
  lookup: () => Promise<Map<number, string>>,
): Promise<ChainBreak | null> {
  const at = (event: StoredEvent | null, reason: BreakReason, message: string): ChainBreak => ({
    aggregate_type: stream.aggregate_type,
    aggregate_id: stream.aggregate_id,
    event_id: event?.event_id ?? null,
    version: event?.aggregate_version ?? null,
    reason,
    message,
  });
  const anchorAt = new Map(anchors.map((a) => [a.version, a.hash]));
  const first = events[0];
  if (first !== undefined && start === null) {
    return at(
      first,
      'gap',
      `event ${first.event_id} is version ${first.aggregate_version}, but versions before it are missing and no retention anchor covers them`,
    );
  }
  let version = start?.version ?? 0;
  let hash = start?.hash ?? GENESIS_HASH;
  for (const event of events) {
    if (event.aggregate_version === version) {
      return at(
        event,
        'duplicate',
        `event ${event.event_id} claims version ${version}, which another event already has`,
      );
    }
    if (event.aggregate_version !== version + 1) {
      return at(
        event,
        'gap',
        `version ${
          version + 1
        } is missing: the event after version ${version} is ${event.event_id} (version ${event.aggregate_version})`,
      );
    }
    const expected = eventHash(hash, event);
    if (expected !== event.hash) {
      const moved = findOriginalVersion(event, await lookup(), anchors);
      if (moved !== null) {
        return at(
          event,
          'reordered',
          `event ${event.event_id} was written as version ${moved} but now sits at version ${event.aggregate_version}`,
        );
      }
      return at(
        event,
        'altered',
        `event ${event.event_id} (version ${event.aggregate_version}, ${event.event_type}) does not match its hash: its content (data, metadata, type, timestamp or source) or its stored hash was changed after it was written`,
      );
    }
    const anchored = anchorAt.get(event.aggregate_version);
    if (anchored !== undefined && anchored !== event.hash) {
      return at(
        event,
        'altered',
        `event ${event.event_id} (version ${event.aggregate_version}) does not match the hash retention recorded for that version`,
      );
    }
    version = event.aggregate_version;
    hash = event.hash;
  }
  if (stream.version !== version || stream.last_hash !== hash) {
    const last = events[events.length - 1] ?? null;
    const why = stream.version > version
      ? `versions ${version + 1}..${stream.version} are missing at the end`
      : stream.version < version
      ? `events after version ${stream.version} were added without moving the head`
      : "the head hash differs from the last event's hash";
    return at(
      last,
      'head_mismatch',
      `the stream head says version ${stream.version}, but the chain ends at version ${version}: ${why}`,
    );
  }
  return null;
}

/** Verifies every aggregate's chain (or one aggregate's, or only events from `since` on). */
export async function verifyChains(connection: CommonQueryMethods, options: VerifyOptions = {}): Promise<VerifyResult> {
  const breaks: ChainBreak[] = [];
  const onlyId = options.aggregate === undefined
    ? sql.fragment``
    : sql.fragment`AND aggregate_id = ${options.aggregate}`;
  const total =
    (await connection.one(sql.type(countRow)`SELECT count(*)::int AS n FROM streams WHERE true ${onlyId}`)).n;
  // out-of-order timestamps are bounded by the slack, so a scan from since - slack misses no link
  const lower = options.since === undefined
    ? null
    : new Date(Date.parse(options.since) - TIMESTAMP_SLACK_MS).toISOString();
  let aggregates = 0;
  let events = 0;
  let done = 0;
  let after: { type: string; id: string } | null = null;
  options.onProgress?.(0, total);
  for (;;) {
    const chunk: readonly Stream[] = await connection.any(sql.type(streamRow)`
      SELECT aggregate_type, aggregate_id, version, last_hash FROM streams
       WHERE true ${onlyId}
         ${
      after === null ? sql.fragment`` : sql.fragment`AND (aggregate_type, aggregate_id) > (${after.type}, ${after.id})`
    }
       ORDER BY aggregate_type, aggregate_id LIMIT ${STREAM_CHUNK}`);
    if (chunk.length === 0) break;
    for (const type of [...new Set(chunk.map((s) => s.aggregate_type))]) {
      const streams = chunk.filter((s) => s.aggregate_type === type);
      const ids = streams.map((s) => s.aggregate_id);
      const anchors = await readAnchors(connection, type, ids);
      const byId = new Map<string, StoredEvent[]>();
      let cursor: { id: string; version: number } | null = null;
      for (;;) {
        // the stored bytes, secrets as stored: the hash covers them
        const page: readonly StoredEvent[] = await connection.any(sql.type(storedEventRow)`
          ${STORED_BYTES} SELECT ${columns} FROM events
           WHERE aggregate_type = ${type} AND aggregate_id = ANY(${sql.array(ids, 'text')})
             ${lower === null ? sql.fragment`` : sql.fragment`AND "timestamp" >= ${lower}::timestamptz`}
             ${
          cursor === null
            ? sql.fragment``
            : sql.fragment`AND (aggregate_id, aggregate_version) > (${cursor.id}, ${cursor.version})`
        }
           ORDER BY aggregate_id, aggregate_version LIMIT ${PAGE}`);
        for (const event of page) {
          const list = byId.get(event.aggregate_id);
          if (list === undefined) byId.set(event.aggregate_id, [event]);
          else list.push(event);
        }
        if (page.length < PAGE) break;
        const last = page[page.length - 1]!;
        cursor = { id: last.aggregate_id, version: last.aggregate_version };
      }
      // with --since, a stream's first checked event chains from the stored hash before it
      const before = lower === null ? new Map<string, string>() : await hashesBefore(connection, type, byId);
      for (const stream of streams) {
        const list = byId.get(stream.aggregate_id) ?? [];
        if (lower !== null && list.length === 0) continue; // nothing of it since then
        const own = anchors.get(stream.aggregate_id) ?? [];
        const firstVersion = list[0]?.aggregate_version ?? stream.version + 1;
        const anchor = own.find((a) => a.version === firstVersion - 1);
        const prior = before.get(stream.aggregate_id);
        const start: Start = firstVersion === 1
          ? { version: 0, hash: GENESIS_HASH }
          : anchor !== undefined
          ? { version: anchor.version, hash: anchor.hash }
          : prior !== undefined
          ? { version: firstVersion - 1, hash: prior }
          : list.length === 0
          ? { version: 0, hash: GENESIS_HASH }
          : null;
        const found = await checkChain(stream, list, start, own, () => streamHashes(connection, stream));
        if (found !== null) breaks.push(found);
        aggregates += 1;
        events += list.length;
      }
    }
    done += chunk.length;
    options.onProgress?.(done, total);
    const last = chunk[chunk.length - 1]!;
    after = { type: last.aggregate_type, id: last.aggregate_id };
  }
  // events of an aggregate the streams table does not know: inserted behind the event store's back
  const orphans = await connection.any(sql.type(orphanRow)`
    SELECT e.aggregate_type, e.aggregate_id, count(*)::int AS n FROM events e
     WHERE NOT EXISTS (SELECT 1 FROM streams s WHERE s.aggregate_type = e.aggregate_type AND s.aggregate_id = e.aggregate_id)
       ${options.aggregate === undefined ? sql.fragment`` : sql.fragment`AND e.aggregate_id = ${options.aggregate}`}
       ${lower === null ? sql.fragment`` : sql.fragment`AND e."timestamp" >= ${lower}::timestamptz`}
     GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 100`);
  for (const orphan of orphans) {
    breaks.push({
      aggregate_type: orphan.aggregate_type,
      aggregate_id: orphan.aggregate_id,
      event_id: null,
      version: null,
      reason: 'no_stream',
      message:
        `${orphan.n} event(s) belong to a stream the streams table does not know: they were not written by the event store`,
    });
  }
  return { aggregates, events, since: options.since ?? null, breaks };
}

/** Per aggregate, the stored hash of the event just before its first event in `byId`. */
async function hashesBefore(
  connection: CommonQueryMethods,
  type: string,
  byId: Map<string, StoredEvent[]>,
): Promise<Map<string, string>> {
  const wanted = [...byId].map(([id, list]) => ({ id, first: list[0]!.aggregate_version })).filter((w) => w.first > 1);
  if (wanted.length === 0) return new Map();
  const rows = await connection.any(sql.type(hashRow)`
    SELECT e.aggregate_id, e.aggregate_version, e.hash
      FROM events e JOIN ${sql.unnest(wanted.map((w) => [w.id, w.first - 1]), ['text', 'int8'])} AS w(id, version)
        ON e.aggregate_id = w.id AND e.aggregate_version = w.version
     WHERE e.aggregate_type = ${type}`);
  return new Map(rows.map((r) => [r.aggregate_id, r.hash]));
}

/** Every stored hash of one stream by version (for diagnosing a mismatch). */
async function streamHashes(connection: CommonQueryMethods, stream: Stream): Promise<Map<number, string>> {
  const rows = await connection.any(sql.type(hashRow)`
    SELECT aggregate_id, aggregate_version, hash FROM events
     WHERE aggregate_type = ${stream.aggregate_type} AND aggregate_id = ${stream.aggregate_id} ORDER BY aggregate_version`);
  return new Map(rows.map((r) => [r.aggregate_version, r.hash]));
}

const REORDER_WINDOW = 50;

/**
 * The version an event was written as, when its stored hash matches its content at another
 * version chained from one of the stream's hashes (within REORDER_WINDOW versions); else null.
 */
function findOriginalVersion(
  event: StoredEvent,
  hashes: Map<number, string>,
  anchors: readonly RetentionAnchor[],
): number | null {
  const near = (v: number) => Math.abs(v - event.aggregate_version) <= REORDER_WINDOW + 1;
  const predecessors = [
    GENESIS_HASH,
    ...[...hashes].filter(([v]) => near(v)).map(([, h]) => h),
    ...anchors.filter((a) => near(a.version)).map((a) => a.hash),
  ];
  for (
    let candidate = Math.max(1, event.aggregate_version - REORDER_WINDOW);
    candidate <= event.aggregate_version + REORDER_WINDOW;
    candidate += 1
  ) {
    if (candidate === event.aggregate_version) continue;
    const moved = { ...event, aggregate_version: candidate };
    if (predecessors.some((before) => eventHash(before, moved) === event.hash)) return candidate;
  }
  return null;
}
