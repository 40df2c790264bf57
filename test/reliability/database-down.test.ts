// The database going away, in miniature (test/reliability/outage.ts is the full drill): on a
// PostgreSQL server of its own, killed with every connection of the pool in the middle of a
// query, the pool recovers once the server is back instead of waiting for ghost connections
// for ever (infra/postgres/driver.ts); while the server is down the API answers 503 with
// Retry-After and /readyz says why; errors that mean "database unreachable" are recognised.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { BackendTerminatedUnexpectedlyError, ConnectionError, type DatabasePool, sql } from 'slonik';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import { isDatabaseDown } from '../../app/http/errors.ts';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { gatePool } from '../../infra/postgres/gate.ts';
import { openDedicatedSession } from '../../infra/postgres/dedicated-session.ts';
import { startEmbeddedPostgres } from '../../infra/postgres/embedded-server.ts';
import { migrate } from '../../infra/postgres/migrate.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { send } from './http-client.ts';
import { crashServer } from './postgres-signals.ts';

async function ownServer(t: { teardown: (f: () => Promise<void>) => void }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-dbdown-'));
  await chmod(dir, 0o755);
  const port = await freePort();
  const start = () =>
    startEmbeddedPostgres({
      dataDir: path.join(dir, 'pg'),
      stateDir: dir,
      port,
      database: 'devicetrail',
      log: () => {},
    });
  const handle = { server: await start(), start };
  t.teardown(async () => {
    await handle.server.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return handle;
}

/** `work`, or a rejection after `ms`: a hang fails the test instead of hanging it. */
const within = <T>(work: Promise<T>, ms: number, what: string) =>
  Promise.race([
    work,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)),
  ]);

test.serial('every pooled connection broken mid-query by a crash: the pool gives them up and works again once the server is back', async (t) => {
  const db = await ownServer(t);
  const pool = await createDatabasePool(db.server.url, { maximumPoolSize: 3 });
  t.teardown(() => pool.end().catch(() => undefined));
  const inFlight = Array.from(
    { length: 3 },
    () => pool.query(sql.unsafe`SELECT pg_sleep(30)`).then(() => 'finished', (e: Error) => e),
  );
  await new Promise((r) => setTimeout(r, 300));
  await crashServer(db.server);
  for (const outcome of await within(Promise.all(inFlight), 10_000, 'the queries in flight')) {
    t.true(isDatabaseDown(outcome), String(outcome));
  }
  const down = await within(
    pool.query(sql.unsafe`SELECT 1`).then(() => null, (e: Error) => e),
    10_000,
    'a query while the server is down',
  );
  t.true(isDatabaseDown(down), String(down));
  db.server = await db.start();
  t.is(
    await within(
      pool.oneFirst(sql.unsafe`SELECT 42 AS n`),
      15_000,
      'a query after the restart (ghost connections fill the pool?)',
    ),
    42,
  );
  const state = (pool as unknown as { state: () => { pendingDestroyConnections: number } }).state();
  t.is(state.pendingDestroyConnections, 0);
  await within(pool.end(), 10_000, 'pool.end()');
});

test.serial('with the server stopped the API answers 503 + Retry-After and /readyz 503 naming the database; started again, both recover', async (t) => {
  const db = await ownServer(t);
  await migrate(db.server.url);
  const pool = await createDatabasePool(db.server.url, { maximumPoolSize: 4 });
  t.teardown(() => pool.end().catch(() => undefined));
  await ensurePartitionsAhead(pool, new Date(), 7);
  const deps = createDeps(pool, { logError: () => {} });
  const admin = await deps.adminTokens.create('db-down');
  const server = createServer(createApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    })
  );
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const list = () =>
    send(base, { method: 'GET', path: '/api/v1/devices', headers: { Authorization: `Bearer ${admin.token}` } }, {
      timeoutMs: 20_000,
    });
  const ready = () => send(base, { method: 'GET', path: '/readyz' }, { timeoutMs: 20_000 });
  t.is((await list()).status, 200);
  t.is((await ready()).status, 200);

  await db.server.stop();
  for (let i = 0; i < 3; i += 1) {
    const r = await list();
    t.is(r.status, 503, r.text);
    t.is(r.json?.error?.code, 'database_unavailable');
    t.is(r.headers['retry-after'], '5');
  }
  const notReady = await ready();
  t.is(notReady.status, 503);
  t.like(notReady.json, { status: 'not_ready', checks: { database: { ok: false } } });

  db.server = await db.start();
  t.is((await list()).status, 200);
  t.is((await ready()).status, 200);
});

test('errors that mean "the database cannot be reached" are recognised, through their causes; others are not', (t) => {
  const coded = (message: string, code: string) => Object.assign(new Error(message), { code });
  for (
    const error of [
      coded('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
      coded('read ECONNRESET', 'ECONNRESET'),
      coded('terminating connection due to administrator command', '57P01'),
      coded('the database system is shutting down', '57P03'),
      coded('the database system is in recovery mode', '57P03'),
      coded('sorry, too many clients already', '53300'),
      coded('connection failure', '08006'),
      new BackendTerminatedUnexpectedlyError(new Error('Connection terminated unexpectedly')),
      new Error('wrapped', { cause: coded('write EPIPE', 'EPIPE') }),
    ]
  ) t.true(isDatabaseDown(error), error.message);
  for (
    const error of [
      new Error('boom'),
      coded('duplicate key value', '23505'),
      coded('syntax error', '42601'),
      'ECONNREFUSED',
      null,
    ]
  ) {
    t.false(isDatabaseDown(error), String(error));
  }
});

test('the pool gate: at most `size` operations at once, a freed slot goes to the next caller, a caller kept waiting gets a ConnectionError', async (t) => {
  const releases: (() => void)[] = [];
  let running = 0;
  let most = 0;
  const fake = {
    query: () =>
      new Promise<void>((resolve) => {
        running += 1;
        most = Math.max(most, running);
        releases.push(() => {
          running -= 1;
          resolve();
        });
      }),
    state: () => ({ waitingClients: 0 }),
  } as unknown as DatabasePool;
  const pool = gatePool(fake, 2, 200);
  const first = pool.query(sql.unsafe`SELECT 1`);
  const second = pool.query(sql.unsafe`SELECT 1`);
  const third = pool.query(sql.unsafe`SELECT 1`);
  await new Promise((r) => setTimeout(r, 20));
  t.is(running, 2, 'the third waits at the gate');
  t.is((pool.state() as { waitingClients: number }).waitingClients, 1, 'and is reported as waiting');
  releases.shift()!();
  await first;
  await new Promise((r) => setTimeout(r, 20));
  t.is(running, 2, 'the freed slot went to the third');
  const kept = pool.query(sql.unsafe`SELECT 1`).then(() => null, (e: unknown) => e);
  const error = await kept;
  t.true(error instanceof ConnectionError, String(error));
  t.true(isDatabaseDown(error), 'a caller kept waiting is answered 503');
  for (const release of releases.splice(0)) release();
  await Promise.all([second, third]);
  t.is(most, 2);
});

test('a dedicated session whose server ends it while it opens fails as a rejection, never through onLost (a leader loop crashed the service that way)', async (t) => {
  // a "server" that accepts the connection and closes it at once, as PostgreSQL does while shutting down
  const server = createTcpServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `postgres://nobody:x@127.0.0.1:${(server.address() as AddressInfo).port}/none`;
  let lost = 0;
  for (let i = 0; i < 5; i += 1) {
    await t.throwsAsync(openDedicatedSession(url, {
      onLost: () => {
        lost += 1;
      },
    }));
  }
  await new Promise((r) => setTimeout(r, 50));
  t.is(lost, 0);
});
