// `npm run check:distributable` (issue #19, run in CI): is the schema ready for the sharded
// storage docs/SCALING.md plans? Migrates a fresh database (on DATABASE_URL's server, else the
// tests' scratch server: testcontainers or the embedded PostgreSQL), reads pg_catalog and
// checks the plan of scripts/distributable.ts: every primary/unique key and foreign key of a
// distributed table includes its distribution column, nothing points into a distributed
// table from outside; and the write path's statements (infra/, app/) are each routed by
// aggregate. Prints the plan, the statements found, and every violation; exit 1 on any.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { migrate } from '../infra/postgres/migrate.ts';
import { adminQuery, databaseUrl, startScratchServer } from '../infra/postgres/scratch-server.ts';
import { checkSchema, checkWritePath, DISTRIBUTED, REFERENCE, type Violation } from './distributable.ts';

const root = path.resolve(import.meta.dirname, '..');
const scratch = await startScratchServer(process.env, (line) => console.log(line));
const database = `dt_distributable_${randomBytes(4).toString('hex')}`;
let exitCode = 1;
try {
  await adminQuery(`CREATE DATABASE ${database}`, scratch.adminUrl);
  const url = databaseUrl(database, scratch.adminUrl);
  await migrate(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let schema: Violation[];
  try {
    schema = await checkSchema(client);
  } finally {
    await client.end();
  }
  const writes = await checkWritePath(root);
  console.log('distribution plan (docs/SCALING.md):');
  for (const [table, column] of Object.entries(DISTRIBUTED)) console.log(`  distributed  ${table} by ${column}`);
  console.log(`  reference    ${REFERENCE.join(', ')}`);
  console.log('  coordinator  every other table');
  const single = writes.statements.filter((s) => s.shape === 'single').length;
  const batches = writes.statements.filter((s) => s.shape === 'batch');
  console.log(
    `write path: ${writes.statements.length} writes of distributed tables, ${single} keyed by one aggregate, ${batches.length} over a set of rows (a batch: possibly several aggregates, each row keyed by its own; grouped by shard under sharding):`,
  );
  for (const s of batches) console.log(`  batch  ${s.verb} ${s.table}  ${s.file}:${s.line}`);
  const violations = [...schema, ...writes.violations];
  if (violations.length === 0) {
    console.log('check:distributable: the schema and the write path follow the plan');
    exitCode = 0;
  } else {
    console.log(`check:distributable: ${violations.length} violation(s):`);
    for (const v of violations) console.log(`  ${v.table}: ${v.problem}`);
  }
} catch (error) {
  console.error(`check:distributable failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`, scratch.adminUrl).catch(() => undefined);
  await scratch.stop();
}
process.exit(exitCode);
