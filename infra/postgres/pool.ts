// The slonik pool, with type parsers that keep timestamps as ISO strings and int8 as numbers.
import { createPool, type DatabasePool } from 'slonik';
import { createResilientPgDriverFactory } from './driver.ts';
import { gatePool } from './gate.ts';

/** PostgreSQL "2026-11-27 20:51:10.123+00" → "2026-11-27T20:51:10.123Z". */
export function pgTimestampToIso(value: string): string {
  const normalised = value.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00');
  return new Date(normalised).toISOString();
}

/** Options for a pool; defaults suit the API process. */
export type PoolOptions = { maximumPoolSize?: number; statementTimeoutMs?: number };

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
