// The device_logs table (issue #15): lines a device uploads, kept apart from the event log
// under their own retention. Written one upload per statement; read per device over a window
// (paged), around an instant (replay), and tailed live in commit-safe order.
import { Buffer } from 'node:buffer';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { createTelemetryPartitionCache, type TelemetryPartitionCache } from './partitions.ts';

/** Log levels, least severe first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A line to store, as the edge normalised it. */
export type NewLogLine = {
  timestamp: string;
  level: LogLevel;
  source_type: string | null;
  source_name: string | null;
  service_name: string | null;
  service_id: number | null;
  container_id: string | null;
  is_stderr: boolean;
  is_system: boolean;
  message: string;
  truncated: boolean;
};

/** A stored line as the API serves it. */
export type LogLine = {
  id: number;
  timestamp: string;
  received_at: string;
  level: string;
  message: string;
  service_name: string | null;
  service_id: number | null;
  container_id: string | null;
  source: { type: string | null; name: string | null };
  is_stderr: boolean;
  is_system: boolean;
  truncated: boolean;
};

const lineRow = z.object({
  id: z.number(),
  timestamp: z.string(),
  received_at: z.string(),
  level: z.string(),
  message: z.string(),
  service_name: z.string().nullable(),
  service_id: z.number().nullable(),
  container_id: z.string().nullable(),
  source_type: z.string().nullable(),
  source_name: z.string().nullable(),
  is_stderr: z.boolean(),
  is_system: z.boolean(),
  truncated: z.boolean(),
});
type LineRow = z.infer<typeof lineRow>;

const tailRow = lineRow.extend({ transaction_id: z.string() });
const horizonRow = z.object({ horizon: z.string() });

const lineColumns = sql.fragment`id, "timestamp", received_at, level, message, service_name, service_id, container_id,
  source_type, source_name, is_stderr, is_system, truncated`;

const toLine = (row: LineRow): LogLine => ({
  id: row.id,
  timestamp: row.timestamp,
  received_at: row.received_at,
  level: row.level,
  message: row.message,
  service_name: row.service_name,
  service_id: row.service_id,
  container_id: row.container_id,
  source: { type: row.source_type, name: row.source_name },
  is_stderr: row.is_stderr,
  is_system: row.is_system,
  truncated: row.truncated,
});

/** The device_logs partitions this process knows exist (one cache per pool). */
export const createLogPartitionCache = (): TelemetryPartitionCache => createTelemetryPartitionCache('device_logs');

/** Stores one upload's lines in one statement; returns how many. */
export async function insertDeviceLogs(
  connection: CommonQueryMethods,
  partitions: TelemetryPartitionCache,
  uuid: string,
  receivedAt: string,
  lines: readonly NewLogLine[],
): Promise<number> {
  if (lines.length === 0) return 0;
  await partitions.ensure(connection, [receivedAt]);
  const rows = await connection.any(sql.type(z.object({ id: z.number() }))`
    INSERT INTO device_logs (device_uuid, received_at, "timestamp", level, source_type, source_name, service_name,
                             service_id, container_id, is_stderr, is_system, message, truncated)
    SELECT ${uuid}, ${receivedAt}::timestamptz, l."timestamp", l.level, l.source_type, l.source_name, l.service_name,
           l.service_id, l.container_id, l.is_stderr, l.is_system, l.message, l.truncated
      FROM jsonb_to_recordset(${JSON.stringify(lines)}::jsonb)
        AS l("timestamp" timestamptz, level text, source_type text, source_name text, service_name text,
             service_id int4, container_id text, is_stderr bool, is_system bool, message text, truncated bool)
    RETURNING id`);
  return rows.length;
}

/** Where a page of lines stopped: the last line's time and id. */
export type LogCursor = { timestamp: string; id: number };

/** An opaque cursor for `after` (base64url of the last line's time and id). */
export const encodeLogCursor = (cursor: LogCursor): string =>
  Buffer.from(`${cursor.timestamp}|${cursor.id}`).toString('base64url');

/** A cursor from `after`, or null when it is not one this API gave out. */
export function decodeLogCursor(text: string): LogCursor | null {
  const [timestamp, id, extra] = Buffer.from(text, 'base64url').toString('utf8').split('|');
  if (extra !== undefined || timestamp === undefined || id === undefined || !/^\d{1,15}$/.test(id)) return null;
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(timestamp) || Number.isNaN(Date.parse(timestamp))) return null;
  return { timestamp, id: Number(id) };
}

/** What a read of one device's lines asks for. */
export type LogQuery = {
  since: string;
  until: string;
  /** Only lines of this service (`serviceName`). */
  service?: string | undefined;
  /** Only lines at this level or a more severe one. */
  level?: LogLevel | undefined;
  /** Only lines whose message holds this text (any case). */
  q?: string | undefined;
  limit: number;
  after?: LogCursor | undefined;
  order: 'asc' | 'desc';
};

/** One device's lines in [since, until] by their time (then id), one page; `next` when more may follow. */
export async function readDeviceLogs(
  connection: CommonQueryMethods,
  uuid: string,
  query: LogQuery,
): Promise<{ lines: LogLine[]; next: LogCursor | null }> {
  const conditions = [
    sql.fragment`device_uuid = ${uuid}`,
    sql.fragment`"timestamp" >= ${query.since}::timestamptz`,
    sql.fragment`"timestamp" <= ${query.until}::timestamptz`,
  ];
  if (query.service !== undefined) conditions.push(sql.fragment`service_name = ${query.service}`);
  if (query.level !== undefined) {
    const levels = LOG_LEVELS.slice(LOG_LEVELS.indexOf(query.level));
    conditions.push(sql.fragment`level = ANY(${sql.array(levels, 'text')})`);
  }
  if (query.q !== undefined) conditions.push(sql.fragment`strpos(lower(message), lower(${query.q})) > 0`);
  const desc = query.order === 'desc';
  if (query.after !== undefined) {
    const cursor = sql.fragment`(${query.after.timestamp}::timestamptz, ${query.after.id}::int8)`;
    conditions.push(desc ? sql.fragment`("timestamp", id) < ${cursor}` : sql.fragment`("timestamp", id) > ${cursor}`);
  }
  const order = desc ? sql.fragment`"timestamp" DESC, id DESC` : sql.fragment`"timestamp", id`;
  const rows = await connection.any(sql.type(lineRow)`
    SELECT ${lineColumns} FROM device_logs WHERE ${sql.join(conditions, sql.fragment` AND `)}
     ORDER BY ${order} LIMIT ${query.limit + 1}`);
  const page = rows.slice(0, query.limit);
  const last = page[page.length - 1];
  return {
    lines: page.map(toLine),
    next: rows.length > query.limit && last !== undefined ? { timestamp: last.timestamp, id: last.id } : null,
  };
}

/** A device's lines within `windowMs` either side of `at`, oldest first, at most `limit` (the nearest kept). */
export async function readLogsAround(
  connection: CommonQueryMethods,
  uuid: string,
  at: string,
  windowMs: number,
  limit: number,
): Promise<{ lines: LogLine[]; omitted: number }> {
  const atMs = Date.parse(at);
  const rows = await connection.any(sql.type(lineRow)`
    SELECT ${lineColumns} FROM device_logs
     WHERE device_uuid = ${uuid}
       AND "timestamp" BETWEEN ${new Date(atMs - windowMs).toISOString()}::timestamptz
                           AND ${new Date(atMs + windowMs).toISOString()}::timestamptz
     ORDER BY abs(extract(epoch FROM "timestamp" - ${at}::timestamptz)), id LIMIT ${limit + 1}`);
  const kept = rows.slice(0, limit).sort((a, b) => a.timestamp.localeCompare(b.timestamp) || a.id - b.id);
  const omitted = rows.length > limit
    ? (await connection.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM device_logs
       WHERE device_uuid = ${uuid}
         AND "timestamp" BETWEEN ${new Date(atMs - windowMs).toISOString()}::timestamptz
                             AND ${new Date(atMs + windowMs).toISOString()}::timestamptz`)) - limit
    : 0;
  return { lines: kept.map(toLine), omitted };
}

/** A live tail's position: every line of transactions before `transactionId`, and of it up to `id`. */
export type TailCursor = { transactionId: string; id: number };

/** Where a tail opened now starts: lines of transactions still running (or later) are new. */
export async function tailStart(connection: CommonQueryMethods): Promise<TailCursor> {
  const horizon = await connection.oneFirst(
    sql.type(horizonRow)`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon`,
  );
  return { transactionId: horizon, id: 0 };
}

/**
 * The device's lines after `cursor` whose transactions have all ended (below the snapshot's
 * xmin), in (transaction_id, id) order: a line committed later sorts after the cursor, so
 * none is passed over. Returns them with the cursor after the last.
 */
export async function readLogTail(
  connection: CommonQueryMethods,
  uuid: string,
  cursor: TailCursor,
  limit: number,
): Promise<{ lines: LogLine[]; cursor: TailCursor }> {
  const rows = await connection.any(sql.type(tailRow)`
    SELECT ${lineColumns}, transaction_id::text AS transaction_id FROM device_logs
     WHERE device_uuid = ${uuid}
       AND (transaction_id, id) > (${cursor.transactionId}::xid8, ${cursor.id}::int8)
       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY transaction_id, id LIMIT ${limit}`);
  const last = rows[rows.length - 1];
  return {
    lines: rows.map(toLine),
    cursor: last === undefined ? cursor : { transactionId: last.transaction_id, id: last.id },
  };
}
