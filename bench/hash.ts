// `npm run bench:hash`: what the tamper-evidence hash costs on ingest. Times eventHash on
// typical events (a state report with two apps, a target update, a small lifecycle event)
// in process, then one-event appends through the event store on a fresh database
// (DATABASE_URL → testcontainers → embedded PostgreSQL, as for the tests), and prints the
// hash's share of an append. Asserts nothing.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createDatabasePool } from '../infra/postgres/pool.ts';
import { eventHash, GENESIS_HASH, type HashedFields } from '../infra/event-store/event-hash.ts';
import { createEventStore, headAfter, type NewEvent } from '../infra/event-store/event-store.ts';
import { migrate } from '../infra/postgres/migrate.ts';
import { adminQuery, databaseUrl, startScratchServer } from '../infra/postgres/scratch-server.ts';

const { values } = parseArgs({
  options: { hashes: { type: 'string', default: '200000' }, appends: { type: 'string', default: '2000' } },
});
const HASHES = Number(values.hashes);
const APPENDS = Number(values.appends);

const service = (name: string, image: string) => ({
  status: 'Running',
  image,
  containerId: `c-${name}`,
  restartCount: 0,
});
const samples: Record<string, Omit<NewEvent, 'event_id'>> = {
  'current_state.updated (2 apps)': {
    event_type: 'current_state.updated',
    source: 'api',
    timestamp: new Date().toISOString(),
    data: {
      apps: {
        1001: {
          services: {
            main: service('main', 'registry.example/app:3'),
            sidecar: service('sidecar', 'registry.example/side:1'),
          },
        },
        2002: { services: { web: service('web', 'registry.example/web:7') } },
      },
      system: { ip_address: '10.0.0.12', mac_address: 'b8:27:eb:12:34:56', os_version: 'balenaOS 5.1', uptime: 86_400 },
      resources: { cpu_usage: 12.5, memory_usage: 43.1, storage_usage: 61.0, temperature: 51.2 },
      apps_count: 2,
    },
    metadata: {
      ip_address: '10.0.0.12',
      user_agent: 'supervisor/16.1',
      endpoint: '/api/v1/device/state',
      request_id: randomUUID(),
      actor: { type: 'device', id: randomUUID() },
    },
  },
  'target_state.updated': {
    event_type: 'target_state.updated',
    source: 'api',
    timestamp: new Date().toISOString(),
    data: {
      version: 4,
      new_state: {
        apps: {
          1001: { appId: 1001, appName: 'app', services: [{ serviceName: 'main', image: 'registry.example/app:4' }] },
        },
        config: {},
      },
      old_state: null,
      apps_added: ['1001'],
      apps_removed: [],
      apps_count: 1,
    },
    metadata: {
      ip_address: '10.0.0.1',
      user_agent: 'curl/8',
      endpoint: '/api/v1/devices/:uuid/target-state',
      request_id: randomUUID(),
      actor: { type: 'admin', id: 'ops' },
    },
  },
  'device.online (small)': {
    event_type: 'device.online',
    source: 'api',
    timestamp: new Date().toISOString(),
    data: {
      device_name: 'pi',
      device_type: 'raspberry-pi-4',
      previous_state: 'offline',
      new_state: 'online',
      reason: null,
      changed_at: new Date().toISOString(),
    },
    metadata: { actor: { type: 'admin', id: 'ops' } },
  },
};

const fields = (event: Omit<NewEvent, 'event_id'>, version: number): HashedFields => ({
  event_id: randomUUID(),
  event_type: event.event_type,
  aggregate_type: 'device',
  aggregate_id: 'b0000000-0000-4000-8000-000000000001',
  aggregate_version: version,
  data: event.data,
  metadata: event.metadata,
  timestamp: event.timestamp,
  source: event.source,
});

console.log(`eventHash in process (node ${process.version}, ${HASHES} hashes each):`);
const perHash = new Map<string, number>();
for (const [name, sample] of Object.entries(samples)) {
  const rows = Array.from({ length: 1000 }, (_, i) => fields(sample, i + 1));
  for (let i = 0; i < 20_000; i += 1) eventHash(GENESIS_HASH, rows[i % rows.length]!); // warm-up
  const t0 = performance.now();
  let previous = GENESIS_HASH;
  for (let i = 0; i < HASHES; i += 1) previous = eventHash(previous, rows[i % rows.length]!);
  const us = ((performance.now() - t0) * 1000) / HASHES;
  perHash.set(name, us);
  console.log(
    `  ${name.padEnd(34)} ${us.toFixed(2).padStart(7)} µs/event  (${
      Math.round(1e6 / us).toLocaleString('en')
    } events/s on one core)`,
  );
}

const server = await startScratchServer(process.env, (line) => console.log(line));
const name = `devicetrail_bench_hash_${process.pid}`;
try {
  await adminQuery(`CREATE DATABASE ${name}`, server.adminUrl);
  const url = databaseUrl(name, server.adminUrl);
  await migrate(url);
  const pool = await createDatabasePool(url, { maximumPoolSize: 4 });
  try {
    const store = createEventStore(pool);
    const sample = samples['current_state.updated (2 apps)']!;
    const uuid = randomUUID();
    let head = await store.head(pool, 'device', uuid);
    const append = async () => {
      await pool.transaction(async (tx) => {
        const stored = await store.append(tx, 'device', uuid, head, [{
          ...sample,
          timestamp: new Date().toISOString(),
        }]);
        head = headAfter(stored);
      });
    };
    for (let i = 0; i < 200; i += 1) await append(); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < APPENDS; i += 1) await append();
    const appendUs = ((performance.now() - t0) * 1000) / APPENDS;
    const hashUs = perHash.get('current_state.updated (2 apps)')!;
    console.log(
      `\none-event appends through the event store (${server.description}, ${APPENDS} sequential transactions):`,
    );
    console.log(`  append (transaction, CAS on streams, INSERT)  ${(appendUs / 1000).toFixed(3)} ms/event`);
    console.log(
      `  of which eventHash                           ${hashUs.toFixed(2)} µs/event = ${
        ((hashUs / appendUs) * 100).toFixed(2)
      } % of the append`,
    );
  } finally {
    await pool.end();
  }
} finally {
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
}
