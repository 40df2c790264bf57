// Optimistic concurrency through the API: racing writers never lose or duplicate a version.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

test('two concurrent target updates with the same If-Match: exactly one succeeds, the other gets 412', async (t) => {
  const { key } = await app.createProvisioningKey();
  const { uuid } = await app.registerDevice(key);
  for (let round = 0; round < 5; round += 1) {
    const version = round;
    const results = await Promise.all([1, 2].map((n) =>
      app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
        token: app.adminToken,
        headers: { 'If-Match': `"${version}"` },
        body: { apps: { [`${round}-${n}`]: {} } },
      })
    ));
    t.deepEqual(results.map((r) => r.status).sort(), [200, 412], results.map((r) => r.text).join(' / '));
  }
  const versions = await app.db.pool.anyFirst(sql.type(z.object({ v: z.number() }))`
    SELECT (data->>'version')::int AS v FROM events WHERE aggregate_id = ${uuid} AND event_type = 'target_state.updated' ORDER BY aggregate_version`);
  t.deepEqual(versions, [1, 2, 3, 4, 5]);
});

test('concurrent reports from one device are all applied, with gapless versions', async (t) => {
  const { key } = await app.createProvisioningKey();
  const device = await app.registerDevice(key);
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    app.request('PATCH', '/api/v1/device/state', {
      token: device.key,
      // a state change each (metrics alone append no event, issue #15)
      body: { [device.uuid]: { hostname: `host-${i}`, cpu_usage: i + 0.5 } },
    })));
  t.true(results.every((r) => r.status === 200), results.map((r) => r.status).join(','));
  const versions = await app.db.pool.anyFirst(sql.type(z.object({ v: z.number() }))`
    SELECT aggregate_version AS v FROM events WHERE aggregate_type = 'device' AND aggregate_id = ${device.uuid} ORDER BY aggregate_version`);
  t.deepEqual(versions, Array.from({ length: 21 }, (_, i) => i + 1));
});

test('concurrent registrations of one uuid: one 201, the rest 200 (same key) and exactly one event', async (t) => {
  const { key } = await app.createProvisioningKey();
  const uuid = crypto.randomUUID();
  const results = await Promise.all(
    Array.from({ length: 6 }, () => app.registerDevice(key, { uuid, deviceApiKey: 'same-key-for-all' })),
  );
  t.deepEqual(results.map((r) => r.response.status).sort(), [200, 200, 200, 200, 200, 201]);
  const n = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events WHERE aggregate_id = ${uuid}`,
  );
  t.is(n, 1);
});
