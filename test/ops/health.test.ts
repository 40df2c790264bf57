// /healthz answers while the process lives; /readyz only when the database answers, every
// shipped migration is applied, partitions exist for today and the days ahead, and the
// process is not shutting down.
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import test from 'ava';
import { sql } from 'slonik';
import { createShutdownRegistry } from '../../app/shutdown.ts';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { listMigrations } from '../../infra/postgres/migrate.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';
import { startOpsApp } from './ops-app.ts';

test('/readyz is 503 naming the missing partition days until they exist, then 200', async (t) => {
  const app = await startOpsApp({ partitionDaysAhead: 2 });
  t.teardown(() => app.close());
  t.is((await app.request('GET', '/healthz')).status, 200);
  const before = await app.request('GET', '/readyz');
  t.is(before.status, 503);
  t.is(before.body.status, 'not_ready');
  t.true(before.body.checks.database.ok);
  t.true(before.body.checks.migrations.ok);
  t.false(before.body.checks.partitions.ok);
  const today = new Date().toISOString().slice(0, 10);
  t.true(before.body.checks.partitions.missing_days.includes(today));

  await ensurePartitionsAhead(app.db.pool, new Date(), 2);
  const after = await app.request('GET', '/readyz');
  t.is(after.status, 200);
  t.deepEqual(after.body.checks.partitions, { ok: true, days_ahead: 2, missing_days: [] });
  t.is(after.headers.get('cache-control'), 'no-store');
});

test('/readyz is 503 when a shipped migration is not applied, and names it', async (t) => {
  const app = await startOpsApp({ partitionDaysAhead: 1 });
  t.teardown(() => app.close());
  await ensurePartitionsAhead(app.db.pool, new Date(), 1);
  const last = (await listMigrations()).at(-1)!;
  await app.db.pool.query(sql.unsafe`DELETE FROM schema_migrations WHERE name = ${last}`);
  const r = await app.request('GET', '/readyz');
  t.is(r.status, 503);
  t.false(r.body.checks.migrations.ok);
  t.deepEqual(r.body.checks.migrations.missing, [last]);
});

test('/readyz is 503 "draining" once shutdown begins; /healthz stays 200', async (t) => {
  const shutdown = createShutdownRegistry();
  const app = await startOpsApp({ partitionDaysAhead: 1, shutdown });
  t.teardown(() => app.close());
  await ensurePartitionsAhead(app.db.pool, new Date(), 1);
  t.is((await app.request('GET', '/readyz')).status, 200);
  shutdown.beginDraining();
  const r = await app.request('GET', '/readyz');
  t.is(r.status, 503);
  t.is(r.body.status, 'draining');
  t.is(r.headers.get('connection'), 'close', 'keep-alive clients are told to reconnect elsewhere');
  t.is((await app.request('GET', '/healthz')).status, 200);
});

/** A TCP forwarder to `target` that can be cut, to make a database disappear mid-test. */
async function cuttableProxy(target: URL) {
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target);
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    port: url.port,
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

test('/readyz reports an unreachable database without details; /healthz is still 200', async (t) => {
  let proxy: Awaited<ReturnType<typeof cuttableProxy>> | undefined;
  const app = await startOpsApp({}, async (deps, db) => {
    proxy = await cuttableProxy(new URL(db.url));
    return { ...deps, pool: await createDatabasePool(proxy.url) };
  });
  t.teardown(async () => {
    await app.deps.pool.end().catch(() => undefined);
    await app.close();
  });
  t.is((await app.request('GET', '/readyz')).body.checks.database.ok, true, 'reachable through the proxy at first');
  await proxy!.cut();
  const r = await app.request('GET', '/readyz');
  t.is(r.status, 503);
  t.false(r.body.checks.database.ok);
  t.false(r.body.checks.migrations.ok);
  t.false(r.text.includes(proxy!.port), 'no connection details in an unauthenticated probe');
  t.is((await app.request('GET', '/healthz')).status, 200);
});

test('probes accept GET only', async (t) => {
  const app = await startOpsApp();
  t.teardown(() => app.close());
  const r = await app.request('POST', '/healthz', { body: {} });
  t.is(r.status, 405);
  t.is(r.body.error.code, 'method_not_allowed');
});
