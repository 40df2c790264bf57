// Races, through HTTP, checked in the database: racing registrations of one uuid (one wins),
// one device key for two uuids, a provisioning key's max_devices under a burst, concurrent
// reports from one device (all applied, versions gapless, none lost), racing If-Match target
// updates (exactly one wins), and concurrent active toggles (events alternate, the read model
// ends where the log ends).
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { canonicalJson } from '../../infra/event-store/event-hash.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

const eventRow = z.object({
  event_type: z.string(),
  aggregate_version: z.number(),
  data: z.record(z.string(), z.unknown()),
  request_id: z.string().nullable(),
});

async function streamOf(uuid: string) {
  return app.db.pool.any(sql.type(eventRow)`
    SELECT event_type, aggregate_version, data, metadata->>'request_id' AS request_id
      FROM events WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} ORDER BY aggregate_version`);
}

/** The stream's versions are 1..n and the read model is the fold of its events. */
async function assertConsistent(
  t: { deepEqual: (a: unknown, b: unknown, m?: string) => void; is: (a: unknown, b: unknown, m?: string) => void },
  uuid: string,
): Promise<void> {
  const events = await app.deps.store.readStream('device', uuid);
  t.deepEqual(events.map((e) => e.aggregate_version), events.map((_, i) => i + 1), 'versions are 1..n');
  const folded = fold(
    events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
    initialState(),
  );
  const row = await app.db.pool.one(
    sql.type(
      z.object({ state: z.unknown(), version: z.number() }),
    )`SELECT state, version FROM devices WHERE uuid = ${uuid}`,
  );
  t.is(canonicalJson(JSON.parse(JSON.stringify(folded))), canonicalJson(row.state), 'read model = fold');
  t.is(row.version, events.length);
}

test("30 registrations of one uuid with different device keys: one 201, 29 × 409, one event, only the winner's key works", async (t) => {
  const { id, key } = await app.createProvisioningKey();
  const uuid = crypto.randomUUID();
  const keys = Array.from({ length: 30 }, (_, i) => `race-key-${i}-${crypto.randomUUID()}`);
  const results = await Promise.all(keys.map((deviceApiKey) => app.registerDevice(key, { uuid, deviceApiKey })));
  const statuses = results.map((r) => r.response.status);
  t.is(statuses.filter((s) => s === 201).length, 1, statuses.join(','));
  t.is(statuses.filter((s) => s === 409).length, 29, statuses.join(','));
  t.is((await streamOf(uuid)).length, 1);
  const winner = results.find((r) => r.response.status === 201)!;
  for (const r of results) {
    const poll = await app.request('GET', `/api/v1/device/${uuid}/target-state`, { token: r.key });
    t.is(poll.status, r === winner ? 200 : 401);
  }
  const devicesCount = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT devices_count AS n FROM provisioning_keys WHERE id = ${id}`,
  );
  t.is(devicesCount, 1, 'the losers did not use up the key');
  await assertConsistent(t, uuid);
});

test('20 registrations of one uuid with the same key: one 201, 19 × 200, one event', async (t) => {
  const { key } = await app.createProvisioningKey();
  const uuid = crypto.randomUUID();
  const results = await Promise.all(
    Array.from({ length: 20 }, () => app.registerDevice(key, { uuid, deviceApiKey: `same-${uuid}` })),
  );
  const statuses = results.map((r) => r.response.status).sort();
  t.deepEqual(statuses, [...Array(19).fill(200), 201]);
  t.true(results.every((r) => r.response.body?.device?.uuid === uuid));
  t.is((await streamOf(uuid)).length, 1);
});

test('one device key for 10 uuids at once: one device gets it, the others 409 and nothing written for them', async (t) => {
  const { key } = await app.createProvisioningKey();
  const shared = `shared-key-${crypto.randomUUID()}`;
  const uuids = Array.from({ length: 10 }, () => crypto.randomUUID());
  const results = await Promise.all(uuids.map((uuid) => app.registerDevice(key, { uuid, deviceApiKey: shared })));
  t.deepEqual(results.map((r) => r.response.status).sort(), [201, ...Array(9).fill(409)]);
  const streams = await Promise.all(uuids.map((u) => streamOf(u)));
  t.deepEqual(streams.map((s) => s.length).sort(), [...Array(9).fill(0), 1]);
});

test('a key with max_devices 5 and 25 registrations at once: exactly 5 devices, 20 × 403, devices_count 5', async (t) => {
  const { id, key } = await app.createProvisioningKey({ fleet_id: 'race', max_devices: 5 });
  const results = await Promise.all(Array.from({ length: 25 }, () => app.registerDevice(key)));
  const statuses = results.map((r) => r.response.status);
  t.is(statuses.filter((s) => s === 201).length, 5, statuses.join(','));
  t.is(statuses.filter((s) => s === 403).length, 20, statuses.join(','));
  const counts = await app.db.pool.one(sql.type(z.object({ devices_count: z.number(), registered: z.number() }))`
    SELECT (SELECT devices_count FROM provisioning_keys WHERE id = ${id}) AS devices_count,
           (SELECT count(*)::int FROM events WHERE event_type = 'device.provisioned' AND data->>'provisioning_key_id' = ${id}) AS registered`);
  t.deepEqual(counts, { devices_count: 5, registered: 5 });
});

test('60 concurrent reports from one device: all 200, each its own event (by request id), versions gapless, the last one wins', async (t) => {
  const { key } = await app.createProvisioningKey();
  const device = await app.registerDevice(key);
  const results = await Promise.all(Array.from({ length: 60 }, (_, i) =>
    app.request('PATCH', '/api/v1/device/state', {
      token: device.key,
      headers: { 'X-Request-Id': `race-report-${i}` },
      // a state change each (metrics alone append no event, issue #15)
      body: { [device.uuid]: { hostname: `host-${i}`, cpu_usage: i + 0.25, uptime: i } },
    })));
  t.true(results.every((r) => r.status === 200), results.map((r) => r.status).join(','));
  const answered = results.map((r) => r.body.devices[device.uuid].version as number);
  t.is(new Set(answered).size, 60, 'every report got its own version');
  const events = await streamOf(device.uuid);
  const reports = events.filter((e) => e.event_type === 'current_state.updated');
  t.is(reports.length, 60);
  // each request's id is its X-Request-Id with a suffix of the service's (issue #16, finding 12)
  const ids = results.map((r) => r.headers.get('x-request-id') ?? '');
  for (const [i, id] of ids.entries()) t.true(id.startsWith(`race-report-${i}.`), id);
  t.deepEqual(reports.map((e) => e.request_id).sort(), [...ids].sort(), 'each acknowledged report is stored once');
  for (const i of results.keys()) {
    const stored = events.find((e) => e.aggregate_version === answered[i]);
    t.is(stored?.request_id, ids[i], "the answered version holds that request's event");
  }
  const last = reports[reports.length - 1]!;
  const view = await app.request('GET', `/api/v1/devices/${device.uuid}`, { token: app.adminToken });
  t.is(
    view.body.current.resources.cpu_usage,
    (last.data['resources'] as { cpu_usage: number }).cpu_usage,
    "the current state is the last report's",
  );
  await assertConsistent(t, device.uuid);
});

test('20 target updates racing with the same If-Match: exactly one 200, 19 × 412, one new version', async (t) => {
  const { key } = await app.createProvisioningKey();
  const { uuid } = await app.registerDevice(key);
  const first = await app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: { ROUND: 'first' } },
  });
  t.is(first.status, 200);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
        token: app.adminToken,
        headers: { 'If-Match': `"${first.body.version}"` },
        body: { apps: {}, config: { ROUND: `racer-${i}` } },
      })),
  );
  const statuses = results.map((r) => r.status);
  t.is(statuses.filter((s) => s === 200).length, 1, statuses.join(','));
  t.is(statuses.filter((s) => s === 412).length, 19, statuses.join(','));
  t.true(results.filter((r) => r.status === 412).every((r) => r.body?.error?.code === 'target_version_mismatch'));
  const winner = results.findIndex((r) => r.status === 200);
  const targets = (await streamOf(uuid)).filter((e) => e.event_type === 'target_state.updated');
  t.deepEqual(targets.map((e) => e.data['version']), [1, 2]);
  t.deepEqual((targets[1]!.data['new_state'] as { config: unknown }).config, { ROUND: `racer-${winner}` });
  await assertConsistent(t, uuid);
});

test('30 concurrent active toggles: all 200, events strictly alternate, one event per reported change, the read model ends as the log does', async (t) => {
  const { key } = await app.createProvisioningKey();
  const { uuid } = await app.registerDevice(key);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      app.request('PATCH', `/api/v1/devices/${uuid}/active`, {
        token: app.adminToken,
        body: { is_active: i % 2 === 1, reason: `toggle ${i}` },
      })),
  );
  t.true(results.every((r) => r.status === 200), results.map((r) => r.status).join(','));
  const toggles = (await streamOf(uuid)).filter((e) =>
    e.event_type === 'device.online' || e.event_type === 'device.offline'
  );
  t.is(toggles.length, results.filter((r) => r.body.changed === true).length, 'one event per change reported');
  t.true(toggles.length >= 1);
  toggles.forEach((e, i) =>
    t.is(e.event_type, i % 2 === 0 ? 'device.offline' : 'device.online', `toggle event ${i} alternates`)
  );
  const row = await app.db.pool.oneFirst(
    sql.type(z.object({ is_active: z.boolean() }))`SELECT is_active FROM devices WHERE uuid = ${uuid}`,
  );
  t.is(row, toggles[toggles.length - 1]!.event_type === 'device.online');
  await assertConsistent(t, uuid);
});
