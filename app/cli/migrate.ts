// `npm run migrate`: applies pending migrations to the service's database.
import { loadConfig } from '../config.ts';
import { openDatabase } from '../database-target.ts';
import { migrate } from '../../infra/postgres/migrate.ts';

const config = loadConfig();
const target = await openDatabase(config, (l) => console.error(l));
try {
  const applied = await migrate(target.url);
  console.log(applied.length === 0 ? 'migrations: up to date' : `applied: ${applied.join(', ')}`);
} finally {
  await target.stop();
}
