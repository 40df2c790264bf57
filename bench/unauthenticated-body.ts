// `npm run bench:unauthenticated`: what a 250 KB body costs the service when its credentials are
// missing or wrong (issue #16, finding 6: it was parsed and walked first, 17-64 ms of CPU, then
// refused). The service runs in a child process (so the client's own work is not counted) on a
// fresh database (DATABASE_URL → testcontainers → embedded PostgreSQL, as for the tests); the
// child's process.cpuUsage() is read before and after each batch of requests, sent one at a
// time on a keep-alive connection. Prints CPU µs per request for each case; asserts nothing.
// Bounded to a few seconds (--requests, default 200 per case).
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { parseArgs } from 'node:util';
import { createApp } from '../app/http/create-app.ts';
import { createDeps } from '../app/http/deps.ts';
import { migrate } from '../infra/postgres/migrate.ts';
import { createDatabasePool } from '../infra/postgres/pool.ts';
import { adminQuery, databaseUrl, startScratchServer } from '../infra/postgres/scratch-server.ts';

const { values } = parseArgs({
  options: { serve: { type: 'string' }, requests: { type: 'string', default: '200' } },
});

if (values.serve !== undefined) {
  // the child: the app on the given database; answers each "cpu" line with its CPU time so far
  const pool = await createDatabasePool(values.serve, { maximumPoolSize: 4 });
  const deps = createDeps(pool, { logError: () => {} });
  const admin = await deps.adminTokens.create('bench');
  const { createServer } = await import('node:http');
  const server = createServer(createApp(deps, { logRequests: false }).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  process.send!({ port, admin: admin.token });
  process.on('message', (message) => {
    if (message === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.send!({ cpu: user + system });
    } else if (message === 'stop') {
      server.close();
      void pool.end().then(() => process.exit(0));
    }
  });
} else {
  const REQUESTS = Number(values.requests);
  const scratch = await startScratchServer(process.env, (line) => console.log(line));
  const name = `bench_unauth_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  await adminQuery(`CREATE DATABASE ${name}`, scratch.adminUrl);
  const url = databaseUrl(name, scratch.adminUrl);
  try {
    await migrate(url);
    const child = fork(new URL(import.meta.url).pathname, ['--serve', url], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const next = () =>
      new Promise<Record<string, unknown>>((resolve) => child.once('message', (m) => resolve(m as never)));
    const { port, admin } = await next() as { port: number; admin: string };
    const cpu = async () => {
      const reply = next();
      child.send('cpu');
      return (await reply)['cpu'] as number;
    };
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = (body: string, headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = httpRequest({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/api/v1/devices/${randomUUID()}/target-state`,
          agent,
          headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length), ...headers },
        }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(body);
      });
    // 250 KB: a valid JSON array of 125,000 numbers (walked item by item when parsed), and
    // the same bytes cut short (invalid JSON)
    const array = `[${Array.from({ length: 125_000 }, () => '0').join(',')}]`;
    const invalid = array.slice(0, -1);
    const cases: { name: string; body: string; headers: Record<string, string>; requests?: number }[] = [
      // the same refusals without a body: what the body itself adds
      { name: 'no credentials, no body', body: '', headers: {} },
      { name: 'unknown bearer token, no body', body: '', headers: { Authorization: 'Bearer dta_wrong-0000' } },
      { name: 'no credentials, JSON array', body: array, headers: {} },
      { name: 'no credentials, invalid JSON', body: invalid, headers: {} },
      { name: 'unknown bearer token, JSON array', body: array, headers: { Authorization: 'Bearer dta_wrong-0000' } },
      // parsed and walked: far dearer, so fewer of them
      {
        name: 'admin token (parsed: 400), for scale',
        body: array,
        headers: { Authorization: `Bearer ${admin}` },
        requests: Math.min(REQUESTS, 40),
      },
    ];
    console.log(
      `\n${REQUESTS} requests per case (the last one fewer), ${
        (array.length / 1024).toFixed(0)
      } KiB bodies, one at a time`,
    );
    for (const c of cases) {
      const requests = c.requests ?? REQUESTS;
      for (let i = 0; i < 10; i += 1) await post(c.body, c.headers); // warm up
      const before = await cpu();
      const started = performance.now();
      const statuses = new Map<number, number>();
      for (let i = 0; i < requests; i += 1) {
        const status = await post(c.body, c.headers);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      const used = (await cpu()) - before;
      const wall = performance.now() - started;
      console.log(
        `${c.name.padEnd(40)} ${(used / requests).toFixed(0).padStart(6)} µs CPU/request (service)  ${
          (wall / requests).toFixed(2)
        } ms wall  statuses ${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ')}`,
      );
    }
    agent.destroy();
    child.send('stop');
    await new Promise((resolve) => child.once('exit', resolve));
  } finally {
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, scratch.adminUrl).catch(() => undefined);
    await scratch.stop();
  }
}
