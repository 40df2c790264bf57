// Integrity checks run on demand (the console's "Run verify", POST /api/v1/integrity/checks):
// verifyChains over the whole log in the background, its result kept in `integrity_checks`
// (migration 008) so the last result outlives the process that ran it.
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { type ChainBreak, verifyChains } from './verify.ts';

const checkRow = z.object({
  id: z.number(),
  started_at: z.string(),
  finished_at: z.string().nullable(),
  status: z.enum(['running', 'passed', 'failed', 'error']),
  started_by: z.string(),
  aggregates: z.number().nullable(),
  events: z.number().nullable(),
  breaks: z.unknown().nullable(),
  error: z.string().nullable(),
});

/** One check: running, passed (no break), failed (breaks found) or error (could not finish). */
export type IntegrityCheck = Omit<z.infer<typeof checkRow>, 'breaks'> & { breaks: ChainBreak[] | null };

// a check still "running" after this long was cut short (its process stopped)
const ABANDONED_AFTER_MS = 6 * 3_600_000;

const asCheck = (row: z.infer<typeof checkRow>): IntegrityCheck => ({
  ...row,
  breaks: row.breaks === null ? null : (row.breaks as ChainBreak[]),
});

/** One check by id, or null (see latestIntegrityChecks for how an abandoned one reads). */
export async function integrityCheck(pool: DatabasePool, id: number, now: Date): Promise<IntegrityCheck | null> {
  const row = await pool.maybeOne(sql.type(checkRow)`
    SELECT id, started_at, finished_at, status, started_by, aggregates, events, breaks, error
      FROM integrity_checks WHERE id = ${id}`);
  return row === null ? null : abandonedAsError(asCheck(row), now);
}

const abandonedAsError = (check: IntegrityCheck, now: Date): IntegrityCheck =>
  check.status === 'running' && now.getTime() - Date.parse(check.started_at) > ABANDONED_AFTER_MS
    ? { ...check, status: 'error', error: 'the check did not finish: the process running it stopped' }
    : check;

/** The newest checks, newest first; a check left running by a stopped process reads as an error. */
export async function latestIntegrityChecks(pool: DatabasePool, now: Date, limit = 10): Promise<IntegrityCheck[]> {
  const rows = await pool.any(sql.type(checkRow)`
    SELECT id, started_at, finished_at, status, started_by, aggregates, events, breaks, error
      FROM integrity_checks ORDER BY id DESC LIMIT ${limit}`);
  return rows.map(asCheck).map((check) => abandonedAsError(check, now));
}

/**
 * Starts a check of every hash chain unless one is running; returns the check (new or
 * running) at once, and `done`, which settles when the work, going on in the background, has
 * recorded its result. `onError` hears a failure to record it.
 */
export async function startIntegrityCheck(
  pool: DatabasePool,
  input: { startedBy: string; now: Date; clock: () => Date; onError: (message: string, error: unknown) => void },
): Promise<{ check: IntegrityCheck; started: boolean; done: Promise<void> }> {
  const running = (await latestIntegrityChecks(pool, input.now, 1)).find((c) => c.status === 'running');
  if (running !== undefined) return { check: running, started: false, done: Promise.resolve() };
  const row = await pool.one(sql.type(checkRow)`
    INSERT INTO integrity_checks (started_at, status, started_by)
    VALUES (${input.now.toISOString()}, 'running', ${input.startedBy})
    RETURNING id, started_at, finished_at, status, started_by, aggregates, events, breaks, error`);
  const done = (async () => {
    try {
      const result = await verifyChains(pool);
      await pool.query(sql.unsafe`
        UPDATE integrity_checks
           SET finished_at = ${input.clock().toISOString()}, status = ${
        result.breaks.length === 0 ? 'passed' : 'failed'
      },
               aggregates = ${result.aggregates}, events = ${result.events}, breaks = ${
        sql.jsonb(result.breaks as never)
      }
         WHERE id = ${row.id}`);
    } catch (error) {
      input.onError(`integrity check ${row.id} failed`, error);
      await pool.query(sql.unsafe`
        UPDATE integrity_checks SET finished_at = ${input.clock().toISOString()}, status = 'error',
               error = ${error instanceof Error ? error.message.slice(0, 2000) : String(error)}
         WHERE id = ${row.id}`).catch((e: unknown) => input.onError(`integrity check ${row.id}: result not saved`, e));
    }
  })();
  return { check: asCheck(row), started: true, done };
}
