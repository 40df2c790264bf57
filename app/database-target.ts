// Which PostgreSQL the process uses: DATABASE_URL when set, else the embedded server
// with its data under DATA_DIR (kept across restarts).
import path from 'node:path';
import { redactUrl } from '../infra/postgres/pool.ts';
import { startEmbeddedPostgres } from '../infra/postgres/embedded-server.ts';
import type { Config } from './config.ts';

/** A database the process can use, and how to let go of it. */
export type DatabaseTarget = { url: string; description: string; stop: () => Promise<void> };

/** Resolves (starting the embedded server when needed) the database for this config. */
export async function openDatabase(config: Config, log: (message: string) => void): Promise<DatabaseTarget> {
  if (config.DATABASE_URL !== undefined) {
    return {
      url: config.DATABASE_URL,
      description: `external PostgreSQL ${redactUrl(config.DATABASE_URL)} (DATABASE_URL)`,
      stop: async () => {},
    };
  }
  const dataDir = path.resolve(config.DATA_DIR);
  const server = await startEmbeddedPostgres({
    dataDir: path.join(dataDir, 'pg'),
    stateDir: dataDir,
    port: config.EMBEDDED_PG_PORT,
    database: 'devicetrail',
    log,
  });
  return {
    url: server.url,
    description: `embedded PostgreSQL ${redactUrl(server.url)} (data in ${server.dataDir}${
      server.owned ? '' : ', reused running server'
    })`,
    stop: server.stop,
  };
}
