// The read model is the fold: folding every device's events with the domain's evolve
// gives exactly the state stored in `devices`.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

const normalise = (value: unknown) => JSON.parse(JSON.stringify(value));

test('every device: fold(events) equals the devices read model', async (t) => {
  const { key } = await app.createProvisioningKey();
  const devices = await Promise.all(Array.from({ length: 6 }, () => app.registerDevice(key)));
  for (const [i, d] of devices.entries()) {
    if (i % 2 === 0) {
      await app.request('POST', `/api/v1/devices/${d.uuid}/target-state`, {
        token: app.adminToken,
        body: { apps: { '1': { services: [{ serviceName: 'web', image: 'web:1' }] } }, config: { A: i } },
      });
    }
    if (i % 3 === 0) {
      await app.request('PATCH', '/api/v1/device/state', {
        token: d.key,
        body: {
          [d.uuid]: { apps: { '1': { services: { web: { status: 'running', image: 'web:1' } } } }, cpu_usage: i },
        },
      });
    }
    if (i === 4) {
      await app.request('PATCH', `/api/v1/devices/${d.uuid}/active`, {
        token: app.adminToken,
        body: { is_active: false, reason: 'test' },
      });
    }
    await app.request('PATCH', '/api/v1/device/state', {
      token: d.key,
      body: { [d.uuid]: { memory_usage: 10 + i, uptime: 100 } },
    });
  }
  const rows = await app.db.pool.any(
    sql.type(
      z.object({ uuid: z.string(), state: z.unknown(), version: z.number() }),
    )`SELECT uuid, state, version FROM devices`,
  );
  t.is(rows.length, devices.length);
  for (const row of rows) {
    const events = await app.deps.store.readStream('device', row.uuid);
    const folded = fold(
      events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
      initialState(),
    );
    t.deepEqual(normalise(folded), normalise(row.state), row.uuid);
    t.is(folded.version, row.version);
  }
});
