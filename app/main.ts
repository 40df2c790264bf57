// The process entry: config → database → migrations → partitions → HTTP on PORT.
import type { Server } from 'node:http';
import { createDatabasePool } from '../infra/database.ts';
import { migrate } from '../infra/migrate.ts';
import { ensurePartitionsAhead } from '../infra/partitions.ts';
import { bootstrapAdminToken } from './bootstrap.ts';
import { loadConfig, ConfigError } from './config.ts';
import { openDatabase } from './database-target.ts';
import { createApp } from './create-app.ts';
import { createDeps } from './deps.ts';

const log = (message: string) => console.log(`[devicetrail] ${message}`);

async function main(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase(config, log);
  log(`database: ${database.description}`);
  const applied = await migrate(database.url);
  log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`);
  const pool = await createDatabasePool(database.url, { maximumPoolSize: config.DB_POOL_SIZE });
  await ensurePartitionsAhead(pool, new Date(), config.PARTITION_DAYS_AHEAD);
  const deps = createDeps(pool, { bodyLimitKb: config.BODY_LIMIT_KB, logError: (m, e) => console.error(`[devicetrail] ${m}`, e) });
  await bootstrapAdminToken(deps.adminTokens, config.DATA_DIR, (line) => console.log(line));
  const app = createApp(deps);
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.PORT, config.HOST, () => resolve(s));
    s.once('error', (error) => {
      void pool.end().then(() => database.stop()).finally(() => reject(new Error(`cannot listen on ${config.HOST}:${config.PORT}: ${error.message}`)));
    });
  });
  log(`listening on http://${config.HOST}:${config.PORT}`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: shutting down`);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await pool.end();
    await database.stop();
    log('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(`[devicetrail] ${error.message}`);
  else console.error('[devicetrail] failed to start:', error);
  process.exit(1);
});
