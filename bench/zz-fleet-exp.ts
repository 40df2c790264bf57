import { performance } from 'node:perf_hooks';
import { createDatabasePool } from '../infra/database.ts';
import { createEventStore } from '../infra/event-store.ts';
import { migrate } from '../infra/migrate.ts';
import { createReplayQueries } from '../infra/replay-queries.ts';
import { replayFleet } from '../infra/replay-service.ts';
import { adminQuery, databaseUrl } from '../test/helpers/database.ts';
import { startTestServer } from '../test/helpers/test-server.ts';
import { appendHistory, generateHistory } from '../test/replay/generate-history.ts';
const server = await startTestServer(process.env, console.log);
const name = `zz_fleet_${process.pid}`;
await adminQuery(`CREATE DATABASE ${name}`, server.adminUrl);
const url = databaseUrl(name, server.adminUrl);
await migrate(url);
const pool = await createDatabasePool(url, { maximumPoolSize: 8 });
const store = createEventStore(pool);
const START = '2026-01-01T00:00:00.000Z'; const DAY = 86400000;
for (let i = 0; i < 10000; i += 250) {
  const work = [];
  for (let j = i; j < i + 250; j++) {
    const uuid = `f${String(j).padStart(7, '0')}-0000-4000-8000-000000000000`;
    work.push(appendHistory(pool, store, uuid, generateHistory({ uuid, count: 10, start: new Date(Date.parse(START) + (j % 1000) * 60_000).toISOString(), spanMs: 29 * DAY, seed: 1000 + j, fleet: `fleet-${j % 10}` }), 100));
  }
  await Promise.all(work);
}
console.log('ready');
const q = createReplayQueries(pool);
const at = new Date(Date.parse(START) + 20.5 * DAY).toISOString();
for (let i = 0; i < 4; i++) { (globalThis as any).tq = 0; (globalThis as any).tf = 0; const t0 = performance.now(); await replayFleet(q, at); console.log('fleet', (performance.now() - t0).toFixed(0), 'ms', 'query', (globalThis as any).tq.toFixed(0), 'fold', (globalThis as any).tf.toFixed(0)); }

if (process.env['KEEP']) { console.log(url); await new Promise(() => {}); }
await pool.end();
await adminQuery(`DROP DATABASE ${name} WITH (FORCE)`, server.adminUrl);
await server.stop();
