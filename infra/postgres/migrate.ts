// Versioned SQL migrations, applied once each, in file-name order, recorded in schema_migrations.
import { readdir, readFile } from 'node:fs/promises';
import pg from 'pg';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';

const migrationsDir = new URL('./migrations/', import.meta.url);

/**
 * Applies pending migrations and returns the names applied. Uses node-postgres directly
 * because a migration file holds many statements, which only the simple query protocol
 * accepts (slonik always uses the extended one). An advisory lock lets several
 * instances start at once.
 */
export async function migrate(databaseUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', ['devicetrail.migrate']);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name),
    );
    const files = (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).sort();
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      const text = await readFile(new URL(file, migrationsDir), 'utf8');
      await client.query('BEGIN');
      try {
        await client.query(text);
        await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [file]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${file} failed: ${(error as Error).message}`, { cause: error });
      }
      applied.push(file);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['devicetrail.migrate']).catch(() => undefined);
    await client.end();
  }
}

/** Names of all migration files shipped, for readiness checks. */
export async function listMigrations(): Promise<string[]> {
  return (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).sort();
}

const existsRow = z.object({ exists: z.boolean() });
const nameRow = z.object({ name: z.string() });

/** Shipped migrations not recorded in schema_migrations (all of them when the table is absent). */
export async function pendingMigrations(connection: CommonQueryMethods): Promise<string[]> {
  const shipped = await listMigrations();
  const recorded = await connection.oneFirst(
    sql.type(existsRow)`SELECT to_regclass('schema_migrations') IS NOT NULL AS exists`,
  );
  const applied = new Set(
    recorded ? await connection.anyFirst(sql.type(nameRow)`SELECT name FROM schema_migrations`) : [],
  );
  return shipped.filter((name) => !applied.has(name));
}
