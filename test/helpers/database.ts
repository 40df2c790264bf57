// Each test file gets its own database, cloned from a migrated template.
import { randomBytes } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import {
  adminQuery as scratchAdminQuery,
  databaseUrl as scratchDatabaseUrl,
} from '../../infra/postgres/scratch-server.ts';

/** The template database name `npm test` prepares with all migrations. */
export const TEMPLATE_DATABASE = 'devicetrail_test_template';

function serverUrl(): string {
  const url = process.env['DEVICETRAIL_TEST_SERVER_URL'];
  if (url === undefined || url === '') {
    throw new Error('DEVICETRAIL_TEST_SERVER_URL is not set: run the tests with `npm test`');
  }
  return url;
}

/** The URL of `database` on the test server (or on `base`). */
export function databaseUrl(database: string, base = serverUrl()): string {
  return scratchDatabaseUrl(database, base);
}

/** Runs one statement on the test server's (or `base`'s) admin database. */
export async function adminQuery(text: string, base = serverUrl()): Promise<void> {
  await scratchAdminQuery(text, base);
}

/** A fresh, migrated database for one test file. */
export type TestDatabase = { name: string; url: string; pool: DatabasePool; drop: () => Promise<void> };

/** Creates a database from the template (retrying while another file copies it). */
export async function createTestDatabase(options: { poolSize?: number } = {}): Promise<TestDatabase> {
  const name = `dt_test_${randomBytes(6).toString('hex')}`;
  for (let attempt = 0;; attempt += 1) {
    try {
      await adminQuery(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`);
      break;
    } catch (error) {
      // "source database is being accessed by other users": another file is copying it
      if (attempt >= 50 || (error as { code?: string }).code !== '55006') throw error;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  const url = databaseUrl(name);
  const pool = await createDatabasePool(url, { maximumPoolSize: options.poolSize ?? 10 });
  return {
    name,
    url,
    pool,
    drop: async () => {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
