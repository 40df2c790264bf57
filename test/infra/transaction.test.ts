// The service's transactions (infra/postgres/transaction.ts): what slonik's transaction() did,
// without its AsyncLocalStorage. Commit, rollback, savepoints, another attempt after the server
// rolled a transaction back, and the session transaction on a connection of `pool.connect`.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { sessionTransaction, transaction } from '../../infra/postgres/transaction.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase();
  await db.pool.query(sql.unsafe`CREATE TABLE tx_test (name text PRIMARY KEY)`);
});
test.after.always(async () => {
  await db?.drop();
});

async function names(): Promise<string[]> {
  return [...await db.pool.anyFirst(sql.type(z.object({ name: z.string() }))`SELECT name FROM tx_test ORDER BY name`)];
}
const insert = (name: string) => sql.unsafe`INSERT INTO tx_test (name) VALUES (${name})`;
/** A statement the server fails as it fails a transaction it rolled back (SQLSTATE 40001). */
const serializationFailure = sql.unsafe`
  DO $$ BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure'; END $$`;

test.beforeEach(async () => {
  await db.pool.query(sql.unsafe`TRUNCATE tx_test`);
});

test.serial('a transaction commits what its handler wrote and returns its result', async (t) => {
  const result = await transaction(db.pool, async (tx) => {
    await tx.query(insert('a'));
    await tx.query(insert('b'));
    t.deepEqual(await names(), [], 'another connection sees nothing before the commit');
    return 42;
  });
  t.is(result, 42);
  t.deepEqual(await names(), ['a', 'b']);
});

test.serial("a handler's error rolls everything back and is the error thrown", async (t) => {
  const error = await t.throwsAsync(transaction(db.pool, async (tx) => {
    await tx.query(insert('a'));
    throw new Error('the handler gave up');
  }));
  t.is(error?.message, 'the handler gave up');
  t.deepEqual(await names(), []);
});

test.serial('a transaction inside another is a savepoint: its failure undoes only its own writes', async (t) => {
  await transaction(db.pool, async (tx) => {
    await tx.query(insert('outer'));
    await t.throwsAsync(
      transaction(tx, async (inner) => {
        await inner.query(insert('inner'));
        throw new Error('inner failed');
      }),
      { message: 'inner failed' },
    );
    // the connection's own transaction() method is a savepoint too
    await tx.transaction(async (inner) => {
      await inner.query(insert('nested'));
      await transaction(inner, (deepest) => deepest.query(insert('deepest')));
    });
  });
  t.deepEqual(await names(), ['deepest', 'nested', 'outer']);
});

test.serial("a transaction the server rolled back runs again; it stops after six attempts, as slonik's did", async (t) => {
  let attempts = 0;
  await transaction(db.pool, async (tx) => {
    attempts += 1;
    await tx.query(insert(`attempt ${attempts}`));
    if (attempts < 3) await tx.query(serializationFailure);
  });
  t.is(attempts, 3);
  t.deepEqual(await names(), ['attempt 3'], 'the failed attempts left nothing');

  attempts = 0;
  const error = await t.throwsAsync(transaction(db.pool, async (tx) => {
    attempts += 1;
    await tx.query(serializationFailure);
  }));
  t.is(attempts, 6);
  const code = (error as { code?: string } | undefined)?.code ?? '';
  t.true(['40001', '25P02'].includes(code), String(error));
  if (code === '25P02') t.regex(String(error), /failed 6 time\(s\) with 25P02/);
});

test.serial('attempts: 1 runs the handler once; an error of another kind is never tried again', async (t) => {
  let attempts = 0;
  await t.throwsAsync(transaction(db.pool, async (tx) => {
    attempts += 1;
    await tx.query(serializationFailure);
  }, { attempts: 1 }));
  t.is(attempts, 1);

  attempts = 0;
  await t.throwsAsync(transaction(db.pool, async (tx) => {
    attempts += 1;
    await tx.query(insert('same'));
    await tx.query(insert('same'));
  }));
  t.is(attempts, 1, "a unique violation is the caller's answer, not a reason to try again");
  t.deepEqual(await names(), []);
});

test.serial("a session transaction runs on the caller's connection, which keeps its session", async (t) => {
  await db.pool.connect(async (session) => {
    await session.query(sql.unsafe`SELECT set_config('application_name', 'tx-test-session', false)`);
    await sessionTransaction(session, async (tx) => {
      await tx.query(insert('in session'));
      const name = await tx.oneFirst(sql.type(z.object({ name: z.string() }))`
        SELECT current_setting('application_name') AS name`);
      t.is(name, 'tx-test-session');
    });
    await t.throwsAsync(sessionTransaction(session, async (tx) => {
      await tx.query(insert('rolled back'));
      throw new Error('no');
    }));
    // the session is usable after a rollback, outside any transaction
    const inTransaction = await session.oneFirst(sql.type(z.object({ open: z.boolean() }))`
      SELECT now() <> statement_timestamp() AS open`);
    t.false(inTransaction);
  });
  t.deepEqual(await names(), ['in session']);
});

test.serial("a transaction's connection refuses queries once the transaction has ended", async (t) => {
  let kept: Parameters<Parameters<typeof transaction>[1]>[0] | undefined;
  await transaction(db.pool, async (tx) => {
    kept = tx;
    await tx.query(insert('inside'));
  });
  await t.throwsAsync(kept!.query(insert('after')), { message: /transaction that has ended \(query\)/ });
  await t.throwsAsync(kept!.transaction((tx) => tx.query(insert('savepoint after'))), {
    message: /savepoint on a transaction that has ended/,
  });
  t.deepEqual(await names(), ['inside']);
});

test.serial('a transaction is READ COMMITTED whatever the server defaults to (no serialization failure at COMMIT, which slonik would answer by sending COMMIT again outside it)', async (t) => {
  const isolation = sql.type(z.object({ transaction_isolation: z.string() }))`SHOW transaction_isolation`;
  await db.pool.connect(async (session) => {
    await session.query(sql.unsafe`SET default_transaction_isolation = 'serializable'`);
    try {
      t.is(await session.oneFirst(isolation), 'serializable', 'the session defaults to serializable');
      t.is(await sessionTransaction(session, (tx) => tx.oneFirst(isolation)), 'read committed');
    } finally {
      await session.query(sql.unsafe`RESET default_transaction_isolation`);
    }
  });
});
