// A scratch PostgreSQL server on which databases may be created and dropped: DATABASE_URL →
// testcontainers (when a Docker engine answers) → embedded. Used by `npm test`, the benchmarks
// and the fixture recorder; testcontainers is a dev dependency, imported only when tried.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { redactUrl } from './pool.ts';
import { startEmbeddedPostgres } from './embedded-server.ts';

/** A server on which tests may create and drop databases. */
export type ScratchServer = { adminUrl: string; description: string; stop: () => Promise<void> };

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function tryTestcontainers(): Promise<ScratchServer | string> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
  } catch (error) {
    return `no Docker engine answered (${(error as Error).message})`;
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:16-alpine').withDatabase('postgres').start();
  return {
    adminUrl: container.getConnectionUri(),
    description: `testcontainers PostgreSQL 16 (${container.getHost()}:${container.getPort()})`,
    stop: async () => {
      await container.stop();
    },
  };
}

/** Starts or selects the test server; `log` receives one line saying which and why. */
export async function startScratchServer(
  env: Record<string, string | undefined>,
  log: (line: string) => void,
): Promise<ScratchServer> {
  if (env['DATABASE_URL']) {
    log(`test database: external PostgreSQL ${redactUrl(env['DATABASE_URL'])} (DATABASE_URL)`);
    return { adminUrl: env['DATABASE_URL'], description: 'DATABASE_URL', stop: async () => {} };
  }
  const container = await tryTestcontainers();
  if (typeof container !== 'string') {
    log(`test database: ${container.description}`);
    return container;
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-test-'));
  await chmod(dir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
  const port = await freePort();
  const server = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'pg'),
    stateDir: dir,
    port,
    database: 'postgres',
    log: () => {},
  });
  log(
    `test database: FALLBACK to embedded PostgreSQL on 127.0.0.1:${port} — no DATABASE_URL, and testcontainers unavailable: ${container}`,
  );
  return {
    adminUrl: server.adminUrl,
    description: `embedded PostgreSQL (127.0.0.1:${port})`,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The URL of `database` on the server whose admin URL is `base`. */
export function databaseUrl(database: string, base: string): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Runs one statement on the admin database at `base` (CREATE/DROP DATABASE). */
export async function adminQuery(text: string, base: string): Promise<void> {
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}
