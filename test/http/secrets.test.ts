// Secrets never enter the log (issue #15, item 3): a planted environment value (a target's, a
// report's, a secret-pattern config key's) is stored nowhere but in secret_values, shown to no
// admin, in no webhook body, log line, error body, snapshot or replay export; the device still
// receives it; after erasure it is nowhere at all. Events older than the hashing (plaintext in
// the log, which is never rewritten) are read hashed on every path.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { runRetention } from '../../infra/retention/retention.ts';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { createApp } from '../../app/http/create-app.ts';
import { type AppDeps, createDeps } from '../../app/http/deps.ts';
import { createLogger } from '../../app/observability/logger.ts';
import { isSecretMarker } from '../../domain/device/secrets.ts';
import { decide } from '../../domain/device/decide.ts';
import { deviceAdapter } from '../../infra/devices/device-store.ts';
import { handleCommand } from '../../infra/event-store/command-handler.ts';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import { verifyChains } from '../../infra/event-store/verify.ts';
import { createDatabasePool, STORED_BYTES } from '../../infra/postgres/pool.ts';
import { createSnapshotter } from '../../infra/replay/snapshotter.ts';
import { openFixtures } from '../../infra/replay/fixture-source.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { createSecretHasher } from '../../infra/secrets/hasher.ts';
import { keepStoredTargetSecrets, upgradeStoredSecrets } from '../../infra/secrets/secret-values.ts';
import { WebhookWorker } from '../../infra/webhooks/delivery.ts';
import { createWebhookDispatcher } from '../../infra/webhooks/dispatcher.ts';
import type { WebhookAddressPolicy } from '../../infra/webhooks/address-policy.ts';
import type { EventListener } from '../../infra/realtime/event-listener.ts';
import { runCli } from '../../replay/cli.ts';
import type { CommandContext } from '../../replay/command.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { memoryLog, waitFor } from '../realtime/realtime-helpers.ts';

// deno-lint-ignore no-explicit-any -- tests read answers as loose JSON
type Answer = { status: number; headers: Headers; text: string; body: any };

const loopback: WebhookAddressPolicy = {
  allowPrivate: true,
  resolve: async () => [{ address: '127.0.0.1', family: 4 }],
};

let db: TestDatabase;
/** The service's pool: with the secrets key, as app/main.ts opens it. */
let pool: DatabasePool;
let deps: AppDeps;
let server: Server;
let receiver: Server;
let dispatcher: EventListener;
let worker: WebhookWorker;
let baseUrl: string;
let adminToken: string;
const logLines: string[] = [];
const hookBodies: string[] = [];
/** Every answer an admin or a device got, as text. */
const answers: string[] = [];
const hasher = createSecretHasher(randomBytes(32));

test.before(async () => {
  db = await createTestDatabase();
  pool = await createDatabasePool(db.url, { maximumPoolSize: 6, secrets: hasher.hash });
  deps = createDeps(pool, { secrets: hasher, webhookPolicy: loopback, logError: (m, e) => logLines.push(`${m} ${e}`) });
  const logger = createLogger({
    level: 'debug',
    format: 'json',
    destination: { write: (chunk: string) => void logLines.push(chunk) },
  });
  server = createServer(createApp(deps, { logger, logRequests: true }).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  adminToken = (await deps.adminTokens.create('secrets-test')).token;
  receiver = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (chunk) => body += String(chunk));
    req.on('end', () => {
      hookBodies.push(body);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const { log } = memoryLog();
  dispatcher = createWebhookDispatcher(pool, { pollIntervalMs: 50, log });
  worker = new WebhookWorker({
    pool,
    maxAttempts: 3,
    retryBaseMs: 20,
    pollIntervalMs: 50,
    timeoutMs: 2000,
    addressPolicy: loopback,
    log,
  });
  await dispatcher.start();
  await worker.start();
});

test.after.always(async () => {
  await worker?.stop();
  await dispatcher?.stop();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await new Promise<void>((resolve) => receiver?.close(() => resolve()));
  await pool?.end();
  await db?.drop();
});

async function call(method: string, route: string, token: string, body?: unknown): Promise<Answer> {
  const response = await fetch(`${baseUrl}${route}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  answers.push(text);
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

async function registeredDevice(): Promise<{ uuid: string; key: string }> {
  const pk = await call('POST', '/api/v1/provisioning-keys', adminToken, { fleet_id: 'secrets' });
  const uuid = crypto.randomUUID();
  const key = `device-key-${crypto.randomUUID()}`;
  const registered = await call('POST', '/api/v1/device/register', pk.body.key, {
    uuid,
    deviceName: 'secret-keeper',
    deviceType: 'raspberry-pi-4',
    deviceApiKey: key,
  });
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`);
  return { uuid, key };
}

const rowText = z.object({ row: z.string() });

/**
 * Every row of every table in the public schema as text (the raw pool: the stored bytes);
 * tables in `except` (and their partitions) left out.
 */
async function dumpTables(except: readonly string[] = []): Promise<string> {
  const tables = await db.pool.any(sql.type(z.object({ name: z.string(), root: z.string() }))`
    SELECT c.relname AS name, COALESCE(p.relname, c.relname) AS root
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
     WHERE n.nspname = 'public' AND c.relkind = 'r'`);
  const parts: string[] = [];
  for (const { name, root } of tables) {
    if (except.includes(root) || except.includes(name)) continue;
    const rows = await db.pool.any(sql.type(rowText)`SELECT t::text AS row FROM ${sql.identifier([name])} t`);
    parts.push(...rows.map((r) => `${name}: ${r.row}`));
  }
  return parts.join('\n');
}

async function replayCli(argv: string[]): Promise<string> {
  let out = '';
  const ctx: CommandContext = {
    stdout: { write: (s: string) => out += s, isTTY: false },
    stderr: { write: (s: string) => out += s, isTTY: false },
    openDatabase: async () => ({ source: createReplayQueries(pool), close: async () => {}, pool }),
    openFixtures: () => Promise.reject(new Error('no fixtures here')),
  };
  const code = await runCli(argv, ctx);
  if (code !== 0) throw new Error(`replay ${argv.join(' ')}: exit ${code}: ${out}`);
  return out;
}

test.serial('a planted secret is kept out of every store, answer, log and webhook; the device still receives it; erased, it is gone', async (t) => {
  const PLANT_TARGET = `planted-target-${randomBytes(8).toString('hex')}`;
  const PLANT_AGENT = `planted-agent-${randomBytes(8).toString('hex')}`;
  const PLANT_CONFIG = `planted-config-${randomBytes(8).toString('hex')}`;
  const PLANT_REPORTED = `planted-reported-${randomBytes(8).toString('hex')}`;
  const PLANT_ERROR = `planted-error-${randomBytes(8).toString('hex')}`;
  const plants = [PLANT_TARGET, PLANT_AGENT, PLANT_CONFIG, PLANT_REPORTED, PLANT_ERROR];
  const { uuid, key } = await registeredDevice();
  const hook = await call('POST', '/api/v1/webhooks', adminToken, {
    url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
    event_types: ['*'],
  });
  t.is(hook.status, 201, hook.text);

  // the target: the seed's `image` style and the agent's `imageName` with config.environment
  const target = await call('POST', `/api/v1/devices/${uuid}/target-state`, adminToken, {
    apps: {
      '1': {
        appName: 'web',
        services: [{ serviceName: 'web', image: 'nginx:1', environment: { DB_PASSWORD: PLANT_TARGET, MODE: 'prod' } }],
      },
      '2': {
        appName: 'agent-style',
        services: [{ serviceName: 'worker', imageName: 'worker:2', config: { environment: { TOKEN: PLANT_AGENT } } }],
      },
    },
    config: { API_TOKEN: PLANT_CONFIG, log_level: 'info' },
  });
  t.is(target.status, 200, target.text);

  // the device receives the real values, in both poll shapes
  const poll = await call('GET', `/api/v1/device/${uuid}/target-state`, key);
  t.is(poll.status, 200);
  t.is(poll.body.apps['1'].services[0].environment.DB_PASSWORD, PLANT_TARGET);
  t.is(poll.body.apps['1'].services[0].environment.MODE, 'prod');
  t.is(poll.body.apps['2'].services[0].config.environment.TOKEN, PLANT_AGENT);
  t.is(poll.body.config.API_TOKEN, PLANT_CONFIG);
  t.is(poll.body.config.log_level, 'info');
  t.is(poll.headers.get('etag'), '"1"');
  const agentPoll = await call('GET', `/api/v1/device/${uuid}/state`, key);
  t.is(agentPoll.body[uuid].apps['1'].services[0].environment.DB_PASSWORD, PLANT_TARGET);

  // reports: the agent's list of services with config.environment, and a secret config key
  const report = await call('PATCH', '/api/v1/device/state', key, {
    [uuid]: {
      apps: {
        '1': {
          services: [{
            serviceName: 'web',
            imageName: 'nginx:1',
            status: 'Running',
            config: {
              image: 'nginx:1',
              environment: { DB_PASSWORD: PLANT_TARGET, MODE: 'prod', EXTRA: PLANT_REPORTED },
            },
          }],
        },
        '2': { services: [{ serviceName: 'worker', imageName: 'worker:2', status: 'Running' }] },
      },
      config: { API_TOKEN: PLANT_CONFIG, log_level: 'info' },
    },
  });
  t.is(report.status, 200, report.text);
  t.deepEqual(report.body.ignored_fields, [`body.${uuid}.apps.1.services.0.config.image`]);
  t.true(report.body.devices[uuid].in_sync, 'the same values hash the same: in sync');
  // a changed secret is a change: another event, and config drift
  const changed = await call('PATCH', '/api/v1/device/state', key, {
    [uuid]: { config: { API_TOKEN: `${PLANT_CONFIG}-old`, log_level: 'info' } },
  });
  t.is(changed.body.devices[uuid].events_written, 1);
  t.false(changed.body.devices[uuid].in_sync);
  t.false(answers.at(-1)!.includes(PLANT_CONFIG));
  plants.push(`${PLANT_CONFIG}-old`);

  // errors do not echo the value
  const bad = await call('PATCH', '/api/v1/device/state', key, {
    [uuid]: {
      apps: { '1': { services: [{ serviceName: 'web', config: { environment: { X: { v: PLANT_ERROR } } } }] } },
    },
  });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /environment\.X/);
  const badTarget = await call('POST', `/api/v1/devices/${uuid}/target-state`, adminToken, {
    apps: { '1': { services: [{ serviceName: 'web', imageName: 7, environment: { P: PLANT_ERROR } }] } },
  });
  t.is(badTarget.status, 400);
  const staleTarget = await fetch(`${baseUrl}/api/v1/devices/${uuid}/target-state`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json', 'If-Match': '"7"' },
    body: JSON.stringify({ apps: { '1': { services: [{ serviceName: 'web', environment: { P: PLANT_ERROR } }] } } }),
  });
  t.is(staleTarget.status, 412);
  answers.push(await staleTarget.text());
  const keptValues = await db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM secret_values WHERE value::text LIKE ${`%${PLANT_ERROR}%`}`);
  t.is(keptValues, 0, 'a refused target keeps no value');

  // admin reads: the device, its events, the feed, replay, the secrets listing
  const device = await call('GET', `/api/v1/devices/${uuid}`, adminToken);
  t.is(device.status, 200);
  const env = device.body.target.apps['1'].services[0].environment;
  t.true(isSecretMarker(env.DB_PASSWORD), 'an admin sees the marker');
  t.is(env.MODE, hasher.hash('prod'), 'every environment value is hashed, not only secret-looking names');
  t.is(device.body.target.config.log_level, 'info', 'a config key outside the pattern stays as it is');
  await call('GET', `/api/v1/devices/${uuid}/events`, adminToken);
  await call('GET', '/api/v1/events?limit=1000', adminToken);
  const state = await call('GET', `/api/v1/devices/${uuid}/state`, adminToken);
  t.is(state.status, 200, state.text);
  const web = state.body.secrets.find((s: { name: string }) => s.name === 'DB_PASSWORD');
  t.like(web, { app_id: '1', service_name: 'web', target: env.DB_PASSWORD, reported: env.DB_PASSWORD, matched: true });
  const apiToken = state.body.secrets.find((s: { name: string }) => s.name === 'API_TOKEN');
  t.like(apiToken, { app_id: null, matched: false });
  await call('GET', `/api/v1/devices/${uuid}/drift`, adminToken);
  await call('GET', `/api/v1/devices/${uuid}/diff?from=2000-01-01T00:00:00Z`, adminToken);
  await call('GET', `/api/v1/devices/${uuid}/timeline`, adminToken);
  const page = await call('GET', `/devices/${uuid}`, adminToken);
  t.is(page.status, 200, page.text.slice(0, 300));
  t.true(page.text.includes(env.DB_PASSWORD), 'the console shows the marker');
  const listing = await call('GET', `/api/v1/devices/${uuid}/secrets`, adminToken);
  t.is(listing.status, 200);
  t.is(listing.body.secrets.length, 4);
  t.true(listing.body.secrets.every((s: { status: string }) => s.status === 'kept'));

  // snapshots, a replay export and the replay text
  const snapshots = await createSnapshotter(pool, { every: 1 }).runOnce();
  t.true(snapshots.snapshots > 0);
  const dir = await mkdtemp(path.join(tmpdir(), 'dt-secrets-'));
  const exportFile = path.join(dir, 'export.ndjson');
  await replayCli(['export', uuid, '--out', exportFile]);
  const exported = await readFile(exportFile, 'utf8');
  t.true(exported.includes(env.DB_PASSWORD));
  const stateText = await replayCli(['state', uuid, '--at', 'now']);
  t.regex(stateText, /DB_PASSWORD hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64} · reported hash matches/);

  await waitFor('webhook deliveries', () => hookBodies.some((b) => b.includes('current_state.updated')));
  t.true(hookBodies.some((b) => b.includes(env.DB_PASSWORD)), 'webhooks carry the marker');

  const everywhere = () =>
    [
      ['log lines', logLines.join('\n')],
      ['webhook bodies', hookBodies.join('\n')],
      ['replay export', exported],
      ['replay state', stateText],
    ] as const;
  const tables = await dumpTables(['secret_values']);
  t.true(tables.includes(env.DB_PASSWORD), 'the dump holds the markers');
  for (const plant of plants) {
    t.false(tables.includes(plant), `${plant} is in a table`);
    for (const [where, text] of everywhere()) t.false(text.includes(plant), `${plant} is in the ${where}`);
  }
  // the only answers that held a value are the device's own polls
  const holding = answers.filter((a) => plants.some((p) => a.includes(p)));
  t.deepEqual(holding, [poll.text, agentPoll.text]);

  // erase the database password: the device no longer receives it, the ETag changes, the value is gone
  const erase = await call('DELETE', `/api/v1/secrets/${env.DB_PASSWORD}`, adminToken);
  t.is(erase.status, 200, erase.text);
  t.like(erase.body, { hash: env.DB_PASSWORD, status: 'erased' });
  t.is((await call('DELETE', `/api/v1/secrets/${env.DB_PASSWORD}`, adminToken)).status, 200, 'idempotent');
  t.is((await call('DELETE', `/api/v1/secrets/hmac-sha256:00000000:${'0'.repeat(64)}`, adminToken)).status, 404);
  t.is((await call('DELETE', '/api/v1/secrets/not-a-marker', adminToken)).status, 400);
  t.is((await call('DELETE', `/api/v1/secrets/${env.DB_PASSWORD}`, key)).status, 403, 'admins only');
  const after = await call('GET', `/api/v1/device/${uuid}/target-state`, key, undefined);
  t.is(after.status, 200);
  t.false(Object.hasOwn(after.body.apps['1'].services[0].environment, 'DB_PASSWORD'), 'an erased variable is left out');
  t.is(after.body.apps['1'].services[0].environment.MODE, 'prod');
  t.regex(after.headers.get('etag') ?? '', /^"1\.e[0-9a-f]{8}"$/);
  const unchanged = await fetch(`${baseUrl}/api/v1/device/${uuid}/target-state`, {
    headers: { Authorization: `Bearer ${key}`, 'If-None-Match': after.headers.get('etag')! },
  });
  t.is(unchanged.status, 304);
  const listed = await call('GET', `/api/v1/devices/${uuid}/secrets`, adminToken);
  t.like(listed.body.secrets.find((s: { name: string }) => s.name === 'DB_PASSWORD'), { status: 'erased' });
  const erasedPage = await call('GET', `/devices/${uuid}`, adminToken);
  t.regex(
    erasedPage.text,
    /DB_PASSWORD<\/code><\/td><td><code class="marker">[^<]+<\/code><\/td><td><span class="badge warn">Erased/,
  );
  const all = await dumpTables();
  t.false(all.includes(PLANT_TARGET), 'erased: the value is in no table at all');
  t.true(all.includes(env.DB_PASSWORD), 'the marker remains');
  t.true(all.includes(PLANT_AGENT), 'values not erased are still kept for the device');
});

test.serial('events written before secrets were hashed are read hashed on every path; the chain still verifies', async (t) => {
  const PLANT = `old-plaintext-${randomBytes(8).toString('hex')}`;
  const { uuid, key } = await registeredDevice();
  // a target as an older release wrote it: the value in the clear in the event and the read
  // model, through a pool without the key and a command that hashes nothing
  const target = {
    apps: { '1': { services: [{ serviceName: 'db', image: 'pg:16', environment: { PGPASSWORD: PLANT } }] } },
    config: {},
  };
  await handleCommand(
    db.pool,
    createEventStore(db.pool),
    deviceAdapter,
    uuid,
    (state) => decide({ type: 'set_target_state', now: new Date().toISOString(), target }, state),
    { metadata: { actor: { type: 'admin', id: 'older-release' } }, source: 'api' },
  );
  t.true((await dumpTables()).includes(PLANT), 'the old log holds the value');

  // the service starting on this release keeps the read model's target values and hashes the read model
  t.is(await keepStoredTargetSecrets(pool, hasher.hash, new Date().toISOString()), 1);
  t.is(await keepStoredTargetSecrets(pool, hasher.hash, new Date().toISOString()), 0, 'once');
  const poll = await call('GET', `/api/v1/device/${uuid}/target-state`, key);
  t.is(poll.body.apps['1'].services[0].environment.PGPASSWORD, PLANT, 'the device still receives it');
  answers.pop();

  const marker = hasher.hash(PLANT);
  const reads = [
    await call('GET', `/api/v1/devices/${uuid}`, adminToken),
    await call('GET', `/api/v1/devices/${uuid}/events`, adminToken),
    await call('GET', `/api/v1/events?aggregate_id=${uuid}&limit=1000`, adminToken),
    await call('GET', `/api/v1/devices/${uuid}/state`, adminToken),
    await call('GET', `/api/v1/devices/${uuid}/diff?from=2000-01-01T00:00:00Z`, adminToken),
    await call('GET', `/api/v1/devices/${uuid}/timeline`, adminToken),
  ];
  for (const read of reads) {
    t.is(read.status, 200, read.text);
    t.false(read.text.includes(PLANT), `read in the clear: ${read.text.slice(0, 200)}`);
  }
  t.true(reads[1]!.text.includes(marker), 'the old event is shown with the marker of its value');
  const exported = await replayCli(['export', uuid]);
  t.false(exported.includes(PLANT));
  t.true(exported.includes(marker));
  await createSnapshotter(pool, { every: 1 }).runOnce();
  const tables = await dumpTables(['secret_values', 'events']);
  t.false(tables.includes(PLANT), 'read model and snapshots hold the marker');
  t.true((await dumpTables()).includes(PLANT), 'the log itself is never rewritten');
  const verified = await verifyChains(pool, { aggregate: uuid });
  t.deepEqual(verified.breaks, [], 'the hash chain covers the stored bytes, which verification reads');

  // a fixture or archive written before secrets were hashed (the stored bytes, the value in the
  // clear): its chain is checked as stored, then it is shown with markers
  const stored = new Map(
    (await pool.any(sql.type(z.object({ event_id: z.string(), data: z.record(z.string(), z.unknown()) }))`
      ${STORED_BYTES} SELECT event_id, data FROM events WHERE aggregate_id = ${uuid}`)).map((
      r,
    ) => [r.event_id, r.data]),
  );
  const oldFixture = path.join(await mkdtemp(path.join(tmpdir(), 'dt-old-fixture-')), 'old.ndjson');
  await writeFile(
    oldFixture,
    exported.trim().split('\n').map((line) => {
      const row = JSON.parse(line) as { event_id: string; data: unknown };
      return JSON.stringify({ ...row, data: stored.get(row.event_id) ?? row.data });
    }).join('\n') + '\n',
  );
  t.true((await readFile(oldFixture, 'utf8')).includes(PLANT), 'the old fixture holds the value');
  const old = await openFixtures([oldFixture], hasher.hash);
  const window = await old.window(uuid, { until: old.now() });
  t.false(JSON.stringify(window.events).includes(PLANT), 'shown with markers');
  t.true(JSON.stringify(window.events).includes(marker));
  await waitFor('webhook of the old event', () => hookBodies.some((b) => b.includes(marker)));
  t.false(hookBodies.join('\n').includes(PLANT));

  // retention checks the chain on the stored bytes and writes its horizon snapshot with markers:
  // three days on, with one day kept, today's partition goes (last: it drops this test's events)
  const retention = await runRetention(pool, {
    retentionDays: 1,
    clock: () => new Date(Date.now() + 3 * 86_400_000),
  });
  t.deepEqual(retention.kept, [], 'no partition kept for a chain that does not verify');
  t.true(retention.dropped.length > 0, "today's partition dropped");
  t.true(retention.snapshots > 0, 'horizon snapshots written');
  t.false((await dumpTables(['secret_values', 'events'])).includes(PLANT), 'the horizon snapshot holds the marker');
});

test.serial('webhook deliveries queued before secrets were hashed are sent with markers, and hold markers once the service has started', async (t) => {
  const PLANT = `old-delivery-${randomBytes(8).toString('hex')}`;
  const marker = hasher.hash(PLANT);
  // the first test's webhook (every event type, to the receiver)
  const webhookId = await db.pool.oneFirst(sql.type(z.object({ id: z.string() }))`
    SELECT id::text AS id FROM webhooks WHERE deleted_at IS NULL ORDER BY created_at LIMIT 1`);
  // two deliveries as an older release queued them: the event's data in the clear
  const delivery = (status: 'pending' | 'failed') => {
    const eventId = crypto.randomUUID();
    const payload = {
      event_id: eventId,
      event_type: 'target_state.updated',
      aggregate_type: 'device',
      aggregate_id: crypto.randomUUID(),
      aggregate_version: 2,
      data: {
        new_state: {
          version: 1,
          apps: { '1': { services: { db: { image: 'pg:16', environment: { PGPASSWORD: PLANT } } } } },
          config: {},
        },
        old_state: null,
      },
      metadata: { actor: { type: 'admin', id: 'older-release' } },
      timestamp: new Date().toISOString(),
    };
    return { eventId, status, payload };
  };
  const queued = [delivery('pending'), delivery('failed')];
  for (const d of queued) {
    await db.pool.query(sql.unsafe`
      INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, payload, status)
      VALUES (${crypto.randomUUID()}, ${webhookId}, ${d.eventId}, 'target_state.updated',
              ${JSON.stringify(d.payload)}::jsonb, ${d.status})`);
  }
  const storedPayloads = async () =>
    (await db.pool.anyFirst(sql.type(z.object({ payload: z.string() }))`
      SELECT payload::text AS payload FROM webhook_deliveries
       WHERE event_id = ANY(${sql.array(queued.map((d) => d.eventId), 'uuid')})`)).join('\n');
  t.true((await storedPayloads()).includes(PLANT), 'queued in the clear');

  // the worker reads it through the service's pool: the receiver gets the marker
  await waitFor('the old delivery', () => hookBodies.some((b) => b.includes(queued[0]!.eventId)));
  const sent = hookBodies.find((b) => b.includes(queued[0]!.eventId))!;
  t.false(sent.includes(PLANT), 'sent in the clear');
  t.true(sent.includes(marker));

  // the service's start rewrites both rows, the delivered one and the failed one, once
  const lines: string[] = [];
  await upgradeStoredSecrets(pool, hasher.hash, new Date().toISOString(), (line) => lines.push(line));
  t.true(
    lines.some((l) => /2 webhook deliveries queued before secrets were hashed now hold markers/.test(l)),
    lines.join('\n'),
  );
  const stored = await storedPayloads();
  t.false(stored.includes(PLANT), 'still on disk in the clear');
  t.true(stored.includes(marker));
  lines.length = 0;
  await upgradeStoredSecrets(pool, hasher.hash, new Date().toISOString(), (line) => lines.push(line));
  t.deepEqual(lines, [], 'nothing left to do the second time');
});
