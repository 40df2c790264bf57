// For command-line tools: the same database the service uses (DATABASE_URL, else the
// embedded server under DATA_DIR, started for the command's duration if not running).
// A command that writes may bring the schema up to date first; one that only reads must not
// change the database it inspects, so it refuses a schema that is behind and names the command
// that fixes it.
import type { DatabasePool } from 'slonik';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { migrate, pendingMigrations } from '../../infra/postgres/migrate.ts';
import { type Config, loadConfig } from '../config.ts';
import { type DatabaseTarget, openDatabase } from '../database-target.ts';
import { secretHasherFor } from '../secrets-key.ts';

/** An open database for a CLI command, its schema up to date. Call `close()` when done. */
export type CliDatabase = { config: Config; target: DatabaseTarget; pool: DatabasePool; close: () => Promise<void> };

/** What a command does with migrations this release ships and the database lacks: apply them, or refuse to run. */
export type MigrationPolicy = 'apply' | 'require';

/** The database lacks migrations this release ships; only `npm run migrate` (or the service starting) applies them. */
export class SchemaBehindError extends Error {
  readonly missing: string[];
  constructor(missing: string[]) {
    super(
      `the database schema is behind this release: ${missing.length} migration(s) not applied (${
        missing.join(', ')
      }); run \`npm run migrate\` first (this command only reads and changes nothing)`,
    );
    this.name = 'SchemaBehindError';
    this.missing = missing;
  }
}

/**
 * Opens the service's database; `log` gets progress lines (stderr by default). `migrations`:
 * 'apply' (the default, for commands that write) applies pending migrations first; 'require'
 * (for commands that only read) throws SchemaBehindError instead, having changed nothing.
 */
export async function openCliDatabase(
  log: (line: string) => void = (l) => console.error(l),
  options: { migrations?: MigrationPolicy } = {},
): Promise<CliDatabase> {
  const config = loadConfig();
  const target = await openDatabase(config, log);
  let pool: DatabasePool | undefined;
  try {
    if (options.migrations !== 'require') await migrate(target.url);
    // events written before secrets were hashed are read hashed here too (README "Secrets"); the
    // tools parse every typed row with its schema (infra/postgres/pool.ts): cheap beside their work
    const secrets = await secretHasherFor(config, log);
    pool = await createDatabasePool(target.url, { maximumPoolSize: 4, secrets: secrets.hash, validateRows: true });
    if (options.migrations === 'require') {
      const missing = await pendingMigrations(pool);
      if (missing.length > 0) throw new SchemaBehindError(missing);
    }
  } catch (error) {
    // an embedded server started for this command is stopped again
    await pool?.end();
    await target.stop();
    throw error;
  }
  const open = pool;
  return {
    config,
    target,
    pool: open,
    close: async () => {
      await open.end();
      await target.stop();
    },
  };
}
