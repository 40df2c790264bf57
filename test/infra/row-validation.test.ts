// Row schemas are types unless a pool validates rows: the CLIs' pools do, the API's does not.
import test from 'ava';
import { SchemaValidationError, sql } from 'slonik';
import { z } from 'zod';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase({ poolSize: 2 });
});
test.after.always(async () => {
  await db?.drop();
});

const countRow = z.object({ n: z.string() });

test('a pool opened with validateRows refuses a row its schema does not describe', async (t) => {
  const pool = await createDatabasePool(db.url, { maximumPoolSize: 1, validateRows: true });
  try {
    const error = await t.throwsAsync(pool.one(sql.type(countRow)`SELECT 1::int AS n`));
    t.true(error instanceof SchemaValidationError, String(error));
    t.deepEqual(await pool.one(sql.type(countRow)`SELECT 'one' AS n`), { n: 'one' });
  } finally {
    await pool.end();
  }
});

test('the API pool only types rows: the same mismatch passes through unchecked', async (t) => {
  t.deepEqual(await db.pool.one(sql.type(countRow)`SELECT 1::int AS n`), { n: 1 } as unknown as { n: string });
});
