// Where a listener or projection gets its database: a pool the caller owns, or a lease
// opened on first use and released when done (app/cli/event-sourcing.ts leases the service's).
import type { DatabasePool } from 'slonik';

/** A pool on loan; `release()` gives it back. */
export type DatabaseLease = { pool: DatabasePool; release: () => Promise<void> };

/** Either a pool (kept open by its owner) or a way to lease one. */
export type DatabaseOption = { pool?: DatabasePool | undefined; database?: (() => Promise<DatabaseLease>) | undefined };

/** Throws a helpful error when the options name no database. */
export function assertDatabaseOption(options: DatabaseOption, what: string): void {
  if (options.pool === undefined && options.database === undefined) {
    throw new Error(
      `${what} needs a database: pass { pool }, or import it from app/cli/event-sourcing.ts, which uses the service's database (DATABASE_URL or the embedded server)`,
    );
  }
}

/** Leases the database named by the options. */
export async function leaseDatabase(options: DatabaseOption, what: string): Promise<DatabaseLease> {
  assertDatabaseOption(options, what);
  if (options.pool !== undefined) return { pool: options.pool, release: async () => {} };
  return options.database!();
}

/** The connection string behind a slonik pool (for the dedicated LISTEN/lock session). */
export const poolUrl = (pool: DatabasePool): string => pool.configuration.connectionUri;
