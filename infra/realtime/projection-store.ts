// Projection checkpoints and states: one SQL operation per function.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import type { FeedCursor } from './feed.ts';
import { transaction } from '../postgres/transaction.ts';

const projectionRow = z.object({
  name: z.string(),
  definition: z.string(),
  transaction_id: z.string(),
  global_position: z.number(),
  ahead: z.array(z.tuple([z.string(), z.number()])),
  revision: z.number(),
  events_processed: z.number(),
  last_event_at: z.string().nullable(),
  last_error: z.string().nullable(),
  rebuilt_at: z.string().nullable(),
  updated_at: z.string(),
});

/** A projection's stored checkpoint. */
export type ProjectionRow = z.infer<typeof projectionRow>;

const projectionColumns = sql.fragment`name, definition, transaction_id::text AS transaction_id, global_position, ahead,
  revision, events_processed, last_event_at, last_error, rebuilt_at, updated_at`;

/** The cursor a projection row stands for. */
export const projectionCursor = (row: ProjectionRow): FeedCursor => ({
  transactionId: row.transaction_id,
  position: row.global_position,
  ahead: row.ahead,
});

/** Reads the projection's checkpoint, creating it at the first event when missing. */
export async function loadProjection(
  connection: CommonQueryMethods,
  name: string,
  definition: string,
): Promise<ProjectionRow> {
  await connection.query(sql.unsafe`
    INSERT INTO projections (name, definition) VALUES (${name}, ${definition}) ON CONFLICT DO NOTHING`);
  return connection.one(sql.type(projectionRow)`
    SELECT ${projectionColumns} FROM projections WHERE name = ${name} AND definition = ${definition}`);
}

/** The projection's checkpoint, or null when it was never run. */
export async function findProjection(
  connection: CommonQueryMethods,
  name: string,
  definition: string,
): Promise<ProjectionRow | null> {
  return connection.maybeOne(sql.type(projectionRow)`
    SELECT ${projectionColumns} FROM projections WHERE name = ${name} AND definition = ${definition}`);
}

const stateRow = z.object({ key: z.string(), state: z.unknown() });

/** The stored states of `keys`. */
export async function loadStates(
  connection: CommonQueryMethods,
  name: string,
  definition: string,
  keys: readonly string[],
): Promise<Map<string, unknown>> {
  if (keys.length === 0) return new Map();
  const rows = await connection.any(sql.type(stateRow)`
    SELECT key, state FROM projection_states
     WHERE projection = ${name} AND definition = ${definition} AND key = ANY(${sql.array([...keys], 'text')})`);
  return new Map(rows.map((r) => [r.key, r.state]));
}

/** A batch's outcome to commit: the new cursor and the states written or removed. */
export type ProjectionCommit = {
  revision: number;
  cursor: FeedCursor;
  processed: number;
  lastEventAt: string | null;
  upserts: ReadonlyMap<string, unknown>;
  deletes: ReadonlySet<string>;
};

/**
 * Commits states and checkpoint in one transaction, compare-and-set on the revision read
 * before the batch. False when another builder committed first (nothing is written).
 */
export async function commitProjection(
  connection: CommonQueryMethods,
  name: string,
  definition: string,
  commit: ProjectionCommit,
): Promise<boolean> {
  return transaction(connection, async (t) => {
    const moved = await t.maybeOne(sql.type(z.object({ revision: z.number() }))`
      UPDATE projections
         SET transaction_id = ${commit.cursor.transactionId}::xid8, global_position = ${commit.cursor.position},
             ahead = ${sql.jsonb(commit.cursor.ahead as never)}, revision = revision + 1,
             events_processed = events_processed + ${commit.processed},
             last_event_at = COALESCE(${commit.lastEventAt}::timestamptz, last_event_at), last_error = NULL, updated_at = now()
       WHERE name = ${name} AND definition = ${definition} AND revision = ${commit.revision}
      RETURNING revision`);
    if (moved === null) return false;
    if (commit.upserts.size > 0) {
      await t.query(sql.unsafe`
        INSERT INTO projection_states (projection, definition, key, state, updated_at)
        SELECT ${name}, ${definition}, k, s, now()
          FROM ${sql.unnest([...commit.upserts].map(([k, s]) => [k, JSON.stringify(s)]), ['text', 'jsonb'])} AS u(k, s)
        ON CONFLICT (projection, definition, key) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`);
    }
    if (commit.deletes.size > 0) {
      await t.query(sql.unsafe`
        DELETE FROM projection_states
         WHERE projection = ${name} AND definition = ${definition} AND key = ANY(${
        sql.array([...commit.deletes], 'text')
      })`);
    }
    return true;
  });
}

/** Records a handler failure on the projection (shown in its status). */
export async function recordProjectionError(
  connection: CommonQueryMethods,
  name: string,
  definition: string,
  error: string,
): Promise<void> {
  await connection.query(sql.unsafe`
    UPDATE projections SET last_error = ${error}, updated_at = now() WHERE name = ${name} AND definition = ${definition}`);
}

/** Clears the projection's states and puts its checkpoint before the first event, in one transaction. */
export async function resetProjection(connection: CommonQueryMethods, name: string, definition: string): Promise<void> {
  await transaction(connection, async (t) => {
    await t.query(
      sql.unsafe`INSERT INTO projections (name, definition) VALUES (${name}, ${definition}) ON CONFLICT DO NOTHING`,
    );
    await t.query(sql.unsafe`
      UPDATE projections SET transaction_id = '0', global_position = 0, ahead = '[]'::jsonb, revision = revision + 1,
             events_processed = 0, last_event_at = NULL, last_error = NULL, rebuilt_at = now(), updated_at = now()
       WHERE name = ${name} AND definition = ${definition}`);
    await t.query(sql.unsafe`DELETE FROM projection_states WHERE projection = ${name} AND definition = ${definition}`);
  });
}

/** One stored state, or undefined. */
export async function readState(
  connection: CommonQueryMethods,
  name: string,
  definition: string,
  key: string,
): Promise<unknown> {
  const row = await connection.maybeOne(sql.type(z.object({ state: z.unknown() }))`
    SELECT state FROM projection_states WHERE projection = ${name} AND definition = ${definition} AND key = ${key}`);
  return row?.state;
}
