// For command-line tools: the same database the service uses (DATABASE_URL, else the
// embedded server under DATA_DIR, started for the command's duration if not running).
import type { DatabasePool } from 'slonik';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { migrate } from '../../infra/postgres/migrate.ts';
import { type Config, loadConfig } from '../config.ts';
import { type DatabaseTarget, openDatabase } from '../database-target.ts';

/** An open, migrated database for a CLI command. Call `close()` when done. */
export type CliDatabase = { config: Config; target: DatabaseTarget; pool: DatabasePool; close: () => Promise<void> };

/** Opens the service's database; `log` gets progress lines (stderr by default). */
export async function openCliDatabase(log: (line: string) => void = (l) => console.error(l)): Promise<CliDatabase> {
  const config = loadConfig();
  const target = await openDatabase(config, log);
  await migrate(target.url);
  const pool = await createDatabasePool(target.url, { maximumPoolSize: 4 });
  return {
    config,
    target,
    pool,
    close: async () => {
      await pool.end();
      await target.stop();
    },
  };
}
