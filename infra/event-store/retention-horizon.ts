// The retention horizon as recorded by the retention job (table retention_state, migration
// 006), and the anchors each aggregate's remaining chain continues from.
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { ReplayError } from '../../domain/replay/source.ts';

const horizonRow = z.object({ horizon: z.string(), retention_days: z.number(), updated_at: z.string() });
const anchorRow = z.object({
  aggregate_type: z.string(),
  aggregate_id: z.string(),
  version: z.number(),
  hash: z.string(),
  last_event_at: z.string(),
  horizon: z.string(),
});

/** The recorded horizon: history before `horizon` is no longer kept. */
export type RecordedHorizon = z.infer<typeof horizonRow>;

/** Where an aggregate's chain continues after retention: event `version` had hash `hash`. */
export type RetentionAnchor = z.infer<typeof anchorRow>;

/** The recorded horizon, or null when retention never dropped anything. */
export async function readHorizon(connection: CommonQueryMethods): Promise<RecordedHorizon | null> {
  return connection.maybeOne(sql.type(horizonRow)`SELECT horizon, retention_days, updated_at FROM retention_state`);
}

/** Moves the recorded horizon forward to `horizon` (never back). Returns the horizon now recorded. */
export async function advanceHorizon(
  connection: CommonQueryMethods,
  horizon: string,
  retentionDays: number,
): Promise<string> {
  return (await connection.one(sql.type(horizonRow)`
    INSERT INTO retention_state (horizon, retention_days) VALUES (${horizon}::timestamptz, ${retentionDays})
    ON CONFLICT (id) DO UPDATE SET
      horizon = GREATEST(retention_state.horizon, EXCLUDED.horizon),
      retention_days = EXCLUDED.retention_days, updated_at = now()
    RETURNING horizon, retention_days, updated_at`)).horizon;
}

/** The anchors of some aggregates of one type, by aggregate id, each list oldest first. */
export async function readAnchors(
  connection: CommonQueryMethods,
  aggregateType: string,
  aggregateIds: readonly string[],
): Promise<Map<string, RetentionAnchor[]>> {
  const rows = await connection.any(sql.type(anchorRow)`
    SELECT aggregate_type, aggregate_id, version, hash, last_event_at, horizon FROM retention_anchors
     WHERE aggregate_type = ${aggregateType} AND aggregate_id = ANY(${sql.array(aggregateIds, 'text')})
     ORDER BY aggregate_id, version`);
  const result = new Map<string, RetentionAnchor[]>();
  for (const row of rows) {
    const list = result.get(row.aggregate_id);
    if (list === undefined) result.set(row.aggregate_id, [row]);
    else list.push(row);
  }
  return result;
}

/** Records anchors (an existing one for the same aggregate and version is kept). */
export async function writeAnchors(connection: CommonQueryMethods, anchors: readonly RetentionAnchor[]): Promise<void> {
  if (anchors.length === 0) return;
  await connection.query(sql.unsafe`
    INSERT INTO retention_anchors (aggregate_type, aggregate_id, version, hash, last_event_at, horizon)
    SELECT * FROM ${
    sql.unnest(
      anchors.map((a) => [a.aggregate_type, a.aggregate_id, a.version, a.hash, a.last_event_at, a.horizon]),
      ['text', 'text', 'int8', 'text', 'timestamptz', 'timestamptz'],
    )
  }
    ON CONFLICT DO NOTHING`);
}

/** The error replay gives for an instant before the horizon (HTTP 410, CLI exit code 1). */
export function beforeHorizonError(at: string, horizon: string): ReplayError {
  return new ReplayError(
    'before_retention_horizon',
    `${at} is before the retention horizon ${horizon}: events before it were removed by retention (RETENTION_DAYS); ask for an instant at or after ${horizon}, or replay the partition archives with --fixture`,
    { at, horizon },
  );
}

/** Throws beforeHorizonError when `at` lies before the recorded horizon; returns the horizon. */
export async function assertAfterHorizon(connection: CommonQueryMethods, at: string): Promise<string | null> {
  const recorded = await readHorizon(connection);
  if (recorded !== null && Date.parse(at) < Date.parse(recorded.horizon)) {
    throw beforeHorizonError(at, recorded.horizon);
  }
  return recorded?.horizon ?? null;
}
