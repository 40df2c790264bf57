// Transactions without slonik's `transaction()` (issue #19). slonik 47 runs each of its
// transactions inside an AsyncLocalStorage. The first one switches on Node's promise hooks, and
// they stay on for the life of the process: from then on every promise of every request pays
// for them (≈ 3 % of the service's CPU profile under load went to the hooks themselves; the
// service's CPU per state report measured 4–7 % lower without them, bench/RESULTS.md). The
// code here does what slonik's transaction did, on a connection of the pool:
//
// - START TRANSACTION, the handler, then COMMIT; on an error, ROLLBACK and the error is thrown.
// - A transaction inside another one is a savepoint.
// - A transaction the server rolled back (SQLSTATE class 40: serialization failure, deadlock)
//   runs again, six attempts in all, as slonik's did (one and `transactionRetryLimit`, 5).
//   slonik retries a failed statement by itself when it does not know of a transaction, and
//   the retry then fails with 25P02 (the transaction is aborted). So 25P02 is retried as well,
//   and when the attempts run out on it, the error thrown says what it stands for.
//
// slonik's context did one more thing: it refused a query sent to the pool from inside a
// transaction's handler. Such a query runs on another connection, outside the transaction.
// A handler here gets its transaction's connection and must use only that; CI's architecture
// check keeps slonik's `transaction()` out of app/, infra/ and replay/.
import { type CommonQueryMethods, type DatabasePool, type DatabaseTransactionConnection, sql } from 'slonik';

/** What runs inside a transaction, on its connection. */
export type TransactionHandler<T> = (transaction: DatabaseTransactionConnection) => Promise<T>;

/** The transactions this module has open, by the connection their handler was given. */
const open = new WeakMap<CommonQueryMethods, { session: CommonQueryMethods; depth: number }>();

/** Attempts of a transaction rolled back by the server (slonik's: one, and 5 retries). */
const ATTEMPTS = 6;

/** `attempts`: 1 when the handler must run once at most (it has effects outside the database). */
export type TransactionOptions = { attempts?: number };

function isPool(connection: CommonQueryMethods): connection is DatabasePool {
  return typeof (connection as Partial<DatabasePool>).connect === 'function';
}

function sqlState(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : null;
}

/** Rolled back by the server, so worth another attempt. */
function retryable(error: unknown): boolean {
  const code = sqlState(error);
  return code !== null && (code.startsWith('40') || code === '25P02');
}

/**
 * Runs `handler` in a transaction. On the pool: on a connection of its own. Inside another
 * transaction (its handler's connection): in a savepoint. On any other connection (slonik's
 * own transaction, as tests open them): through slonik, which knows its state.
 */
export function transaction<T>(
  connection: CommonQueryMethods,
  handler: TransactionHandler<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const outer = open.get(connection);
  if (outer !== undefined) return savepoint(outer.session, outer.depth + 1, handler);
  if (isPool(connection)) return connection.connect((session) => sessionTransaction(session, handler, options));
  return connection.transaction(handler, (options.attempts ?? ATTEMPTS) - 1);
}

/**
 * Runs `handler` in a transaction on `session`: a connection taken with `pool.connect` (to hold
 * a session's advisory lock, say), which must not be in a transaction already.
 */
export async function sessionTransaction<T>(
  session: CommonQueryMethods,
  handler: TransactionHandler<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? ATTEMPTS;
  for (let attempt = 1;; attempt++) {
    // READ COMMITTED whatever default_transaction_isolation says: no serialization failure at
    // COMMIT then, which slonik, not knowing of this transaction, would answer by sending COMMIT
    // again outside it (a warning, taken for success)
    await session.query(sql.unsafe`START TRANSACTION ISOLATION LEVEL READ COMMITTED`);
    const connection = enter(session, 0);
    try {
      const result = await handler(connection);
      await session.query(sql.unsafe`COMMIT`);
      return result;
    } catch (error) {
      // the handler's connection refuses queries from here on (one still running in a branch of
      // a failed Promise.all must not run after the ROLLBACK, outside the transaction)
      open.delete(connection);
      // a ROLLBACK that fails (the connection is gone) leaves the handler's error to report;
      // slonik destroys a connection whose routine threw, so none goes back to the pool mid-transaction
      await session.query(sql.unsafe`ROLLBACK`).catch(() => undefined);
      if (!retryable(error)) throw error;
      if (attempt >= attempts) throw exhausted(error, attempts);
    } finally {
      open.delete(connection);
    }
  }
}

/** The error of a transaction the server rolled back `attempts` times. */
function exhausted(error: unknown, attempts: number): unknown {
  if (sqlState(error) !== '25P02') return error;
  // slonik re-sent the statement that failed into the aborted transaction: that is what failed
  return Object.assign(
    new Error(
      `transaction failed ${attempts} time(s) with 25P02 (a statement sent into an aborted transaction: ` +
        'slonik re-sends one the server refused with a deadlock or serialization failure)',
      { cause: error },
    ),
    { code: '25P02' },
  );
}

async function savepoint<T>(session: CommonQueryMethods, depth: number, handler: TransactionHandler<T>): Promise<T> {
  const name = sql.identifier([`devicetrail_savepoint_${depth}`]);
  await session.query(sql.unsafe`SAVEPOINT ${name}`);
  const connection = enter(session, depth);
  try {
    const result = await handler(connection);
    await session.query(sql.unsafe`RELEASE SAVEPOINT ${name}`);
    return result;
  } catch (error) {
    open.delete(connection);
    // the outermost transaction decides on another attempt: a class 40 error aborted it all
    await session.query(sql.unsafe`ROLLBACK TO SAVEPOINT ${name}`).catch(() => undefined);
    throw error;
  } finally {
    open.delete(connection);
  }
}

/**
 * The connection a handler gets: the session's queries, refused once the transaction has ended
 * (the session may be back in the pool, serving someone else); its `transaction` opens a savepoint.
 */
function enter(session: CommonQueryMethods, depth: number): DatabaseTransactionConnection {
  const methods: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(session)) {
    if (typeof method !== 'function') continue;
    methods[name] = (...args: unknown[]) => {
      if (!open.has(connection)) return Promise.reject(new Error(`a query on a transaction that has ended (${name})`));
      return (method as (...a: unknown[]) => unknown)(...args);
    };
  }
  const connection = {
    ...methods,
    transaction: <T>(handler: TransactionHandler<T>) => {
      if (!open.has(connection)) return Promise.reject(new Error('a savepoint on a transaction that has ended'));
      return savepoint(session, depth + 1, handler);
    },
  } as DatabaseTransactionConnection;
  open.set(connection, { session, depth });
  return connection;
}
