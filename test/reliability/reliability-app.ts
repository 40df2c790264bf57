// The app for the fuzz and auth-matrix suites: the real Koa app on its own database, served
// on 127.0.0.1, its pino output (same logger as app/main.ts) and every error body kept for the
// secrets grep, and a write audit: a trigger on every table counts each row written, so a
// test can prove a refused request wrote nothing. The one write a refusal may make is
// documented: a disabled device's refused call moves `devices.last_seen_at` (a contact), so
// an update that changes only that column is not counted.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'slonik';
import { z } from 'zod';
import { type AppOptions, createApp } from '../../app/http/create-app.ts';
import { type AppDeps, createDeps } from '../../app/http/deps.ts';
import { createLogger } from '../../app/observability/logger.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type HttpRequest, type HttpResponse, keepAliveAgent, send } from './http-client.ts';

const tableRow = z.object({ name: z.string() });
const writeRow = z.object({ table_name: z.string(), op: z.string() });

/** Installs the write audit on every table of the database. */
async function installWriteAudit(db: TestDatabase): Promise<void> {
  await db.pool.query(
    sql.unsafe`CREATE TABLE reliability_writes (id bigserial PRIMARY KEY, table_name text NOT NULL, op text NOT NULL)`,
  );
  await db.pool.query(sql.unsafe`
    CREATE FUNCTION reliability_record_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_TABLE_NAME = 'devices' AND TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'last_seen_at') = (to_jsonb(OLD) - 'last_seen_at') THEN
        RETURN NULL;
      END IF;
      INSERT INTO reliability_writes (table_name, op) VALUES (TG_TABLE_NAME, TG_OP);
      RETURN NULL;
    END $$`);
  const tables = await db.pool.anyFirst(sql.type(tableRow)`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname NOT IN ('reliability_writes', 'schema_migrations')`);
  for (const table of tables) {
    await db.pool.query(
      sql.unsafe`CREATE TRIGGER reliability_audit AFTER INSERT OR UPDATE OR DELETE ON ${sql.identifier([table])}
      FOR EACH ROW EXECUTE FUNCTION reliability_record_write()`,
    );
  }
}

/** Starts the app; `options` are the app's (rate limits…), `clock` the time it sees. */
export async function startReliabilityApp(options: { app?: AppOptions; clock?: () => Date } = {}) {
  const db = await createTestDatabase();
  await installWriteAudit(db);
  const logLines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json', destination: { write: (line) => logLines.push(line) } });
  const deps: AppDeps = createDeps(db.pool, {
    ...(options.clock ? { clock: options.clock } : {}),
    logError: (message, err) => logger.error({ err }, message),
    // the suites register webhooks on 127.0.0.1 (never delivered: no worker runs), and the fuzz
    // must not send random host names to a resolver: private addresses allowed, nothing resolved
    webhookPolicy: { allowPrivate: true },
  });
  const app = createApp(deps, { logger, ...options.app });
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = await deps.adminTokens.create('reliability');
  const agent = keepAliveAgent(8);
  const errorBodies: string[] = [];
  let writesSeen = 0;

  return {
    db,
    deps,
    app,
    baseUrl,
    adminToken: admin.token,
    adminTokenId: admin.id,
    logLines,
    errorBodies,
    /** Sends a request; error bodies are kept for the secrets grep. */
    async request(req: HttpRequest): Promise<HttpResponse> {
      const response = await send(baseUrl, req, { agent, timeoutMs: 30_000 });
      if (response.status >= 400) errorBodies.push(response.text);
      return response;
    },
    /** Rows written (by table and operation) since the last call. */
    async newWrites(): Promise<{ table_name: string; op: string }[]> {
      const rows = await db.pool.any(sql.type(writeRow.extend({ id: z.number() }))`
        SELECT id, table_name, op FROM reliability_writes WHERE id > ${writesSeen} ORDER BY id`);
      if (rows.length > 0) writesSeen = rows[rows.length - 1]!.id;
      return rows.map(({ table_name, op }) => ({ table_name, op }));
    },
    /** Every row of every table as text (for the secrets grep); credential tables are marked. */
    async databaseText(): Promise<{ name: string; text: string; mayHoldHashes: boolean }[]> {
      const tables = await db.pool.anyFirst(sql.type(tableRow)`
        SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition`);
      const out: { name: string; text: string; mayHoldHashes: boolean }[] = [];
      for (const table of tables) {
        const rows = await db.pool.anyFirst(
          sql.type(z.object({ t: z.string() }))`SELECT to_jsonb(x)::text AS t FROM ${sql.identifier([table])} x`,
        );
        out.push({
          name: `table ${table}`,
          text: rows.join('\n'),
          mayHoldHashes: ['device_credentials', 'provisioning_keys', 'admin_tokens'].includes(table),
        });
      }
      return out;
    },
    async close(): Promise<void> {
      agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.drop();
    },
  };
}

/** The running app's type. */
export type ReliabilityApp = Awaited<ReturnType<typeof startReliabilityApp>>;
