// Listener checkpoints and dead letters: one SQL operation per function.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { type FeedCursor, type FeedLag, feedLag } from './feed.ts';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';

/** The channel a redelivery request notifies, with the listener's name as payload. */
export const REDELIVER_CHANNEL = 'devicetrail_redeliver';

const aheadSchema = z.array(z.tuple([z.string(), z.number()]));

const checkpointRow = z.object({
  name: z.string(),
  transaction_id: z.string(),
  global_position: z.number(),
  ahead: aheadSchema,
  owner: z.string().nullable(),
  owner_since: z.string().nullable(),
  events_processed: z.number(),
  last_event_at: z.string().nullable(),
  updated_at: z.string(),
});

/** A listener's stored checkpoint. */
export type CheckpointRow = z.infer<typeof checkpointRow>;

const checkpointColumns = sql.fragment`name, transaction_id::text AS transaction_id, global_position, ahead, owner,
  owner_since, events_processed, last_event_at, updated_at`;

/** The cursor a checkpoint row stands for. */
export const checkpointCursor = (
  row: Pick<CheckpointRow, 'transaction_id' | 'global_position' | 'ahead'>,
): FeedCursor => ({ transactionId: row.transaction_id, position: row.global_position, ahead: row.ahead });

/** Creates the listener's checkpoint at `cursor` unless it exists. */
export async function ensureCheckpoint(
  connection: CommonQueryMethods,
  name: string,
  cursor: FeedCursor,
): Promise<void> {
  await connection.query(sql.unsafe`
    INSERT INTO listener_checkpoints (name, transaction_id, global_position, ahead)
    VALUES (${name}, ${cursor.transactionId}::xid8, ${cursor.position}, ${sql.jsonb(cursor.ahead as never)})
    ON CONFLICT (name) DO NOTHING`);
}

/** Makes `token` the fencing owner of the checkpoint and returns it. */
export async function claimCheckpoint(
  connection: CommonQueryMethods,
  name: string,
  token: string,
): Promise<CheckpointRow> {
  return connection.one(sql.type(checkpointRow)`
    UPDATE listener_checkpoints SET owner = ${token}, owner_since = now(), updated_at = now()
     WHERE name = ${name} RETURNING ${checkpointColumns}`);
}

/** Moves the checkpoint forward when `token` still owns it; false when another process took over. */
export async function saveCheckpoint(
  connection: CommonQueryMethods,
  name: string,
  token: string,
  cursor: FeedCursor,
  processed: number,
  lastEventAt: string | null,
): Promise<boolean> {
  const row = await connection.maybeOne(sql.type(z.object({ name: z.string() }))`
    UPDATE listener_checkpoints
       SET transaction_id = ${cursor.transactionId}::xid8, global_position = ${cursor.position},
           ahead = ${sql.jsonb(cursor.ahead as never)}, events_processed = events_processed + ${processed},
           last_event_at = COALESCE(${lastEventAt}::timestamptz, last_event_at), updated_at = now()
     WHERE name = ${name} AND owner = ${token}
    RETURNING name`);
  return row !== null;
}

/** One listener's checkpoint, or null. */
export async function readCheckpoint(connection: CommonQueryMethods, name: string): Promise<CheckpointRow | null> {
  return connection.maybeOne(
    sql.type(checkpointRow)`SELECT ${checkpointColumns} FROM listener_checkpoints WHERE name = ${name}`,
  );
}

const deadLetterRow = z.object({
  id: z.number(),
  listener_name: z.string(),
  event_id: z.string(),
  event_type: z.string(),
  aggregate_type: z.string(),
  aggregate_id: z.string(),
  global_position: z.number(),
  event: z.unknown(),
  error: z.string(),
  attempts: z.number(),
  status: z.enum(['dead', 'redeliver', 'redelivered', 'discarded']),
  first_failed_at: z.string(),
  last_failed_at: z.string(),
  resolved_at: z.string().nullable(),
});

/** A stored dead letter. */
export type DeadLetter = z.infer<typeof deadLetterRow>;

/** Stores (or re-stores) an event a listener's handlers failed on. */
export async function storeDeadLetter(
  connection: CommonQueryMethods,
  listener: string,
  event: StoredEvent,
  error: string,
  attempts: number,
): Promise<void> {
  await connection.query(sql.unsafe`
    INSERT INTO listener_dead_letters (listener_name, event_id, event_type, aggregate_type, aggregate_id, global_position, event, error, attempts)
    VALUES (${listener}, ${event.event_id}, ${event.event_type}, ${event.aggregate_type}, ${event.aggregate_id},
            ${event.global_position}, ${sql.jsonb(event as never)}, ${error}, ${attempts})
    ON CONFLICT (listener_name, event_id) DO UPDATE
      SET error = EXCLUDED.error, attempts = listener_dead_letters.attempts + EXCLUDED.attempts,
          status = 'dead', last_failed_at = now(), resolved_at = NULL`);
}

/** Dead letters an operator asked to redeliver, oldest first. */
export async function pendingRedeliveries(
  connection: CommonQueryMethods,
  listener: string,
  limit: number,
): Promise<readonly (DeadLetter & { stored: StoredEvent })[]> {
  const rows = await connection.any(sql.type(deadLetterRow)`
    SELECT * FROM listener_dead_letters WHERE listener_name = ${listener} AND status = 'redeliver' ORDER BY id LIMIT ${limit}`);
  return rows.map((row) => ({ ...row, stored: storedEventRow.parse(row.event) }));
}

/** Marks a redelivered dead letter as handled. */
export async function markRedelivered(connection: CommonQueryMethods, id: number): Promise<void> {
  await connection.query(
    sql.unsafe`UPDATE listener_dead_letters SET status = 'redelivered', resolved_at = now() WHERE id = ${id}`,
  );
}

/** Records a failed redelivery: the letter is dead again, with the new error. */
export async function markRedeliveryFailed(
  connection: CommonQueryMethods,
  id: number,
  error: string,
  attempts: number,
): Promise<void> {
  await connection.query(sql.unsafe`
    UPDATE listener_dead_letters SET status = 'dead', error = ${error}, attempts = attempts + ${attempts}, last_failed_at = now()
     WHERE id = ${id}`);
}

/** Which dead letters an operator command acts on. */
export type DeadLetterSelection = {
  ids?: readonly number[] | undefined;
  listener?: string | undefined;
  status?: DeadLetter['status'] | undefined;
  limit?: number | undefined;
};

function selectionConditions(selection: DeadLetterSelection) {
  const conditions = [sql.fragment`true`];
  if (selection.ids !== undefined) conditions.push(sql.fragment`id = ANY(${sql.array([...selection.ids], 'int8')})`);
  if (selection.listener !== undefined) conditions.push(sql.fragment`listener_name = ${selection.listener}`);
  if (selection.status !== undefined) conditions.push(sql.fragment`status = ${selection.status}`);
  return sql.join(conditions, sql.fragment` AND `);
}

/** Dead letters, newest first. */
export async function listDeadLetters(
  connection: CommonQueryMethods,
  selection: DeadLetterSelection = {},
): Promise<readonly DeadLetter[]> {
  return connection.any(sql.type(deadLetterRow)`
    SELECT * FROM listener_dead_letters WHERE ${selectionConditions(selection)} ORDER BY id DESC LIMIT ${
    selection.limit ?? 100
  }`);
}

/** Asks the running listeners to redeliver the selected dead letters; returns how many. */
export async function requestRedelivery(
  connection: CommonQueryMethods,
  selection: DeadLetterSelection,
): Promise<number> {
  const result = await connection.query(sql.unsafe`
    UPDATE listener_dead_letters SET status = 'redeliver'
     WHERE ${selectionConditions(selection)} AND status = 'dead'`);
  return result.rowCount;
}

/** Gives up on the selected dead letters; returns how many. */
export async function discardDeadLetters(
  connection: CommonQueryMethods,
  selection: DeadLetterSelection,
): Promise<number> {
  const result = await connection.query(sql.unsafe`
    UPDATE listener_dead_letters SET status = 'discarded', resolved_at = now()
     WHERE ${selectionConditions(selection)} AND status IN ('dead', 'redeliver')`);
  return result.rowCount;
}

const openCountRow = z.object({ listener_name: z.string(), n: z.number() });

/** A listener's status for operators: checkpoint, owner, lag and open dead letters. */
export type ListenerStatus = {
  name: string;
  owner: string | null;
  owner_since: string | null;
  events_processed: number;
  last_event_at: string | null;
  updated_at: string;
  dead_letters: number;
} & FeedLag;

/** Every listener's status. */
export async function listenerStatuses(connection: CommonQueryMethods): Promise<ListenerStatus[]> {
  const rows = await connection.any(
    sql.type(checkpointRow)`SELECT ${checkpointColumns} FROM listener_checkpoints ORDER BY name`,
  );
  const open = await connection.any(sql.type(openCountRow)`
    SELECT listener_name, count(*)::int8 AS n FROM listener_dead_letters WHERE status IN ('dead', 'redeliver') GROUP BY listener_name`);
  const openBy = new Map(open.map((r) => [r.listener_name, r.n]));
  const statuses: ListenerStatus[] = [];
  for (const row of rows) {
    statuses.push({
      name: row.name,
      owner: row.owner,
      owner_since: row.owner_since,
      events_processed: row.events_processed,
      last_event_at: row.last_event_at,
      updated_at: row.updated_at,
      dead_letters: openBy.get(row.name) ?? 0,
      ...(await feedLag(connection, checkpointCursor(row))),
    });
  }
  return statuses;
}

/** Clears the owner when `token` still holds it (a clean stop). */
export async function releaseCheckpoint(connection: CommonQueryMethods, name: string, token: string): Promise<void> {
  await connection.query(
    sql
      .unsafe`UPDATE listener_checkpoints SET owner = NULL, updated_at = now() WHERE name = ${name} AND owner = ${token}`,
  );
}
