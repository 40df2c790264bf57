// Where a listener or projection gets its database: a pool the caller owns, or a lease
// opened on first use and released when done (app/event-sourcing.ts leases the service's).
import type { DatabasePool } from 'slonik';

/** A pool on loan; `release()` gives it back. */
export type DatabaseLease = { pool: DatabasePool; release: () => Promise<void> };

/** Either a pool (kept open by its owner) or a way to lease one. */
export type DatabaseOption = { pool?: DatabasePool | undefined; database?: (() => Promise<DatabaseLease>) | undefined };

/** Leases the database named by the options; throws a helpful error when there is none. */
export async function leaseDatabase(options: DatabaseOption, what: string): Promise<DatabaseLease> {
  if (options.pool !== undefined) return { pool: options.pool, release: async () => {} };
  if (options.database !== undefined) return options.database();
  throw new Error(`${what} needs a database: pass { pool }, or import it from app/event-sourcing.ts, which uses the service's database (DATABASE_URL or the embedded server)`);
}

/** The connection string behind a slonik pool (for the dedicated LISTEN/lock session). */
export const poolUrl = (pool: DatabasePool): string => pool.configuration.connectionUri;
