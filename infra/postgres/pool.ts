// The slonik pool, with type parsers that keep timestamps as ISO strings and int8 as numbers.
//
// Row schemas (`sql.type(schema)`) type rows; slonik 47 checks them only when a result-parser
// interceptor is registered. The API's pool registers none: on the hot paths a zod parse per
// row costs more than the query (bench/RESULTS.md), and those rows come from our own schema.
// A pool opened with `validateRows` parses every typed row with its schema (test/infra/row-validation
// proves it): the command-line tools' pool does (app/cli/cli-database.ts: replay, admin, psql;
// there a parse per row is cheap beside the work), the service's does not (row schemas are
// types only on its hot paths). A row that does not conform fails with the statement and the
// field named.
import { createPool, type DatabasePool, type Interceptor, SchemaValidationError } from 'slonik';
import { createResilientPgDriverFactory } from './driver.ts';
import { gatePool } from './gate.ts';

/** PostgreSQL "2026-11-27 20:51:10.123+00" → "2026-11-27T20:51:10.123Z". */
export function pgTimestampToIso(value: string): string {
  const normalised = value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
  return new Date(normalised).toISOString();
}

/** Options for a pool; defaults suit the API process. */
export type PoolOptions = { maximumPoolSize?: number; statementTimeoutMs?: number; validateRows?: boolean };

/** Parses each row of a typed query (`sql.type(schema)`) with its schema; an invalid row throws. */
export function resultParserInterceptor(): Interceptor {
  return {
    name: 'devicetrail-result-parser',
    transformRow: (context, query, row) => {
      if (context.resultParser === undefined) return row;
      const parsed = context.resultParser.safeParse(row);
      if (!parsed.success) {
        const error = new SchemaValidationError(query, row, parsed.error.issues);
        // the message names the statement and what did not conform (slonik's says neither)
        Object.defineProperty(error, 'message', {
          value: `${error.message} ${
            parsed.error.issues.map((i) => `${i.path.join('.') || '(row)'}: ${i.message}`).join('; ')
          } — in: ${query.sql.replace(/\s+/g, ' ').slice(0, 300)}`,
        });
        throw error;
      }
      return parsed.data as typeof row;
    },
  };
}

/** Creates the slonik pool every infra module receives. */
export async function createDatabasePool(url: string, options: PoolOptions = {}): Promise<DatabasePool> {
  const size = options.maximumPoolSize ?? 10;
  // a caller waits at most 5 s for a free connection (see database-gate.ts)
  return gatePool(
    await createPool(url, {
      maximumPoolSize: size,
      statementTimeout: options.statementTimeoutMs ?? 30_000,
      idleTimeout: 10_000,
      connectionTimeout: 5_000,
      // drops connections that broke mid-query (see database-driver.ts)
      driverFactory: createResilientPgDriverFactory(),
      // slonik's default runs DISCARD ALL on every release: a round trip per checkout that also
      // throws away prepared statements. Nothing here leaves session state behind.
      resetConnection: async () => {},
      interceptors: options.validateRows === true ? [resultParserInterceptor()] : [],
      typeParsers: [
        { name: 'int8', parse: (v: string) => Number(v) },
        { name: 'numeric', parse: (v: string) => Number(v) },
        { name: 'timestamptz', parse: pgTimestampToIso },
        { name: 'json', parse: (v: string) => JSON.parse(v) },
        { name: 'jsonb', parse: (v: string) => JSON.parse(v) },
      ],
    }),
    size,
    5_000,
  );
}

/** Hides the password in a connection string, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable DATABASE_URL>';
  }
}
