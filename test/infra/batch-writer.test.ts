// Group commit: many devices' reports in one statement; a device whose stream moved on
// is retried alone and never fails the others.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { decide } from '../../domain/device/decide.ts';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { handleCommand } from '../../infra/event-store/command-handler.ts';
import { createDeviceBatchWriter } from '../../infra/devices/batch-writer.ts';
import { deviceAdapter } from '../../infra/devices/device-store.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

const context = (uuid: string) => ({ metadata: { actor: { type: 'device' as const, id: uuid } }, source: 'api' });
// a state change per n (the hostname; metrics alone append no event, issue #15)
const report = (n: number) => (state: Parameters<typeof decide>[1]) =>
  decide(
    {
      type: 'report_state',
      now: new Date().toISOString(),
      system: { uptime: n, hostname: `host-${n}` },
      resources: { cpu_usage: n },
    },
    state,
  );

async function assertFoldEqualsReadModel(t: import('ava').ExecutionContext, uuid: string): Promise<void> {
  const events = await app.deps.store.readStream('device', uuid);
  t.deepEqual(events.map((e) => e.aggregate_version), events.map((_, i) => i + 1), 'gapless versions');
  const folded = fold(
    events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
    initialState(),
  );
  const row = await app.db.pool.one(
    sql.type(
      z.object({ state: z.unknown(), version: z.number() }),
    )`SELECT state, version FROM devices WHERE uuid = ${uuid}`,
  );
  t.deepEqual(JSON.parse(JSON.stringify(folded)), row.state);
  t.is(row.version, events.length);
}

test.serial('concurrent reports of many devices are written together, each gapless and equal to its fold', async (t) => {
  const { key } = await app.createProvisioningKey();
  const devices = await Promise.all(Array.from({ length: 40 }, () => app.registerDevice(key)));
  const writer = createDeviceBatchWriter(app.db.pool, app.deps.store, { maxInFlight: 1 });
  const results = await Promise.all(
    devices.flatMap((d) => [1, 2, 3].map((n) => writer.submit(d.uuid, report(n), context(d.uuid)))),
  );
  t.is(results.length, 120);
  t.true(results.every((r) => r.events.length === 1));
  // one statement = one transaction: count the transactions the 120 events were committed in
  const transactions = new Set(results.map((r) => r.events[0]!.transaction_id));
  t.log(`120 reports of 40 devices committed in ${transactions.size} transactions`);
  t.true(transactions.size >= 3, 'a device appears at most once per batch');
  t.true(transactions.size <= 30, `far fewer commits than reports (${transactions.size})`);
  for (const d of devices.slice(0, 5)) await assertFoldEqualsReadModel(t, d.uuid);
});

test.serial('a device whose stream another writer moves mid-batch is retried alone; the others commit', async (t) => {
  const { key } = await app.createProvisioningKey();
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => app.registerDevice(key)));
  const writer = createDeviceBatchWriter(app.db.pool, app.deps.store, { maxInFlight: 1 });
  // another writer appends to A and keeps its transaction open (the stream row stays locked)
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let appended!: () => void;
  const holding = new Promise<void>((resolve) => {
    appended = resolve;
  });
  const other = handleCommand(
    app.db.pool,
    app.deps.store,
    deviceAdapter,
    a!.uuid,
    (state) =>
      decide({ type: 'set_target_state', now: new Date().toISOString(), target: { apps: {}, config: {} } }, state),
    { metadata: { actor: { type: 'admin', id: 'test' } }, source: 'api' },
    async () => {
      appended();
      await gate;
    },
  );
  await holding;
  const submitted = [a!, b!, c!].map((d) => writer.submit(d.uuid, report(7), context(d.uuid)));
  // wait until the batch statement is blocked on A's stream row, then let the other writer commit
  let blocked = false;
  for (let i = 0; i < 400 && !blocked; i += 1) {
    const waiting = await app.db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    blocked = waiting > 0;
    if (!blocked) await new Promise((r) => setTimeout(r, 25));
  }
  t.true(blocked, 'the batch statement waited on the stream row the other writer holds');
  release();
  await other;
  const results = await Promise.all(submitted);
  t.deepEqual(results.map((r) => r.events[0]?.event_type), [
    'current_state.updated',
    'current_state.updated',
    'current_state.updated',
  ]);
  // B and C committed together; A lost its compare-and-set and was written alone, after the target
  const [ra, rb, rc] = results.map((r) => r.events[0]!);
  t.is(rb!.transaction_id, rc!.transaction_id);
  t.not(ra!.transaction_id, rb!.transaction_id);
  const aEvents = await app.deps.store.readStream('device', a!.uuid);
  t.is(aEvents[1]!.event_type, 'target_state.updated');
  t.is(aEvents.find((e) => e.event_id === ra!.event_id)!.aggregate_version > 2, true);
  for (const d of [a!, b!, c!]) await assertFoldEqualsReadModel(t, d.uuid);
});

test.serial('a report for a disabled device is refused even when its state is cached', async (t) => {
  const { key } = await app.createProvisioningKey();
  const d = await app.registerDevice(key);
  const writer = createDeviceBatchWriter(app.db.pool, app.deps.store);
  await writer.submit(d.uuid, report(1), context(d.uuid));
  await app.request('PATCH', `/api/v1/devices/${d.uuid}/active`, { token: app.adminToken, body: { is_active: false } });
  await t.throwsAsync(writer.submit(d.uuid, report(1), context(d.uuid)), { message: /disabled/ });
  await t.throwsAsync(writer.submit(d.uuid, report(2), context(d.uuid)), { message: /disabled/ });
});

test.serial('a device written by this writer is decided from memory; when another writer moved it, the answer comes from a fresh read', async (t) => {
  const { key } = await app.createProvisioningKey();
  const d = await app.registerDevice(key);
  const writer = createDeviceBatchWriter(app.db.pool, app.deps.store);
  const first = await writer.submit(d.uuid, report(1), context(d.uuid));
  t.is(first.events.length, 1);
  // another writer appends report 2; this writer still holds report 1 in memory
  await handleCommand(app.db.pool, app.deps.store, deviceAdapter, d.uuid, report(2), context(d.uuid));
  // report 1 again: unchanged against memory, but a change against the stream: it is written
  const again = await writer.submit(d.uuid, report(1), context(d.uuid));
  t.is(again.events.length, 1, 'an unchanged answer is never given from memory alone');
  t.is(again.state.version, first.state.version + 2);
  // and once more: now memory is fresh, nothing changed, nothing written
  const same = await writer.submit(d.uuid, report(1), context(d.uuid));
  t.is(same.events.length, 0);
  // a change decided from stale memory loses its compare-and-set and is retried alone
  await handleCommand(app.db.pool, app.deps.store, deviceAdapter, d.uuid, report(3), context(d.uuid));
  const changed = await writer.submit(d.uuid, report(4), context(d.uuid));
  t.is(changed.events.length, 1);
  t.is(changed.events[0]!.aggregate_version, again.state.version + 2);
  await assertFoldEqualsReadModel(t, d.uuid);
});

test.serial('a device whose state is only kept as JSON (cold tier) is decided from that copy, still under the compare-and-set', async (t) => {
  const { key } = await app.createProvisioningKey();
  const devices = [await app.registerDevice(key), await app.registerDevice(key)];
  // no state kept as an object: every cached state is the JSON tier's
  const writer = createDeviceBatchWriter(app.db.pool, app.deps.store, { cacheSize: 0, coldCacheSize: 10 });
  for (const d of devices) t.is((await writer.submit(d.uuid, report(1), context(d.uuid))).events.length, 1);
  const [d] = devices;
  // from the JSON copy: unchanged is checked against a fresh read, so nothing is written
  t.is((await writer.submit(d!.uuid, report(1), context(d!.uuid))).events.length, 0);
  // another writer moves the stream on: the copy is stale, its compare-and-set loses, the retry reads fresh
  await handleCommand(app.db.pool, app.deps.store, deviceAdapter, d!.uuid, report(2), context(d!.uuid));
  const changed = await writer.submit(d!.uuid, report(3), context(d!.uuid));
  t.is(changed.events.length, 1);
  t.is((await writer.submit(d!.uuid, report(4), context(d!.uuid))).events.length, 1);
  for (const device of devices) await assertFoldEqualsReadModel(t, device.uuid);
});

test.serial('reports travel as the parser made them: app ids as keys fold and store as before', async (t) => {
  const { key } = await app.createProvisioningKey();
  const d = await app.registerDevice(key);
  const body = (n: number) => ({
    [d.uuid]: {
      apps: {
        '1000': { status: 'running', containerId: 'c-1', services: { main: { status: 'Running', image: 'r/web:1' } } },
        '1001': { status: 'running', containerId: 'c-2' },
      },
      uptime: n,
      cpu_usage: n,
    },
  });
  for (const n of [1, 2, 3]) {
    const response = await app.request('PATCH', '/api/v1/device/state', { token: d.key, body: body(n) });
    t.is(response.status, 200, response.text);
  }
  // the zod schema still decides what is valid, and names the field
  const bad = await app.request('PATCH', '/api/v1/device/state', {
    token: d.key,
    body: { [d.uuid]: { apps: { '1000': { status: 7 } } } },
  });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /apps\.1000\.status/);
  await assertFoldEqualsReadModel(t, d.uuid);
});

test.serial('two writers taking turns on one device (two workers): a stale memory is read again in the next batch, never alone', async (t) => {
  const { key } = await app.createProvisioningKey();
  const devices = await Promise.all([1, 2, 3].map(() => app.registerDevice(key)));
  const alone: string[] = [];
  const writers = [0, 1].map(() =>
    createDeviceBatchWriter(app.db.pool, app.deps.store, { onAlone: (uuid) => alone.push(uuid) })
  );
  // each device's reports alternate between the writers, one after the other: every write
  // after the first two is decided from a memory the other writer has made stale
  for (let n = 1; n <= 8; n += 1) {
    const results = await Promise.all(
      devices.map((d) => writers[n % 2]!.submit(d.uuid, report(n), context(d.uuid))),
    );
    t.true(results.every((r) => r.events.length === 1 && r.state.version === n + 1), `round ${n}`);
  }
  t.deepEqual(alone, [], 'no command went the slow way');
  for (const d of devices) {
    const events = await app.deps.store.readStream('device', d.uuid);
    t.deepEqual(
      events.slice(1).map((e) => (e.data as { system?: { hostname?: string } }).system?.hostname),
      [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `host-${n}`),
      'in the order submitted',
    );
    await assertFoldEqualsReadModel(t, d.uuid);
  }
});
