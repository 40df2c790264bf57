// `npm test`: picks the PostgreSQL server (printed once), prepares a migrated template
// database, then runs ava with any extra arguments. Exit code is ava's.
import { spawn } from 'node:child_process';
import { migrate } from '../infra/postgres/migrate.ts';
import { adminQuery, databaseUrl, TEMPLATE_DATABASE } from './helpers/database.ts';
import { startScratchServer } from '../infra/postgres/scratch-server.ts';

const server = await startScratchServer(process.env, (line) => console.log(`\n${line}\n`));
let code = 1;
try {
  await adminQuery(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`, server.adminUrl);
  await adminQuery(`CREATE DATABASE ${TEMPLATE_DATABASE}`, server.adminUrl);
  await migrate(databaseUrl(TEMPLATE_DATABASE, server.adminUrl));
  code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.mjs', ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, DEVICETRAIL_TEST_SERVER_URL: server.adminUrl },
    });
    child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
} finally {
  await adminQuery(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
}
process.exit(code);
