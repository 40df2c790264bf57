// GET /api/v1/fleet/summary: the device_summary projection (built with ProjectionBuilder
// and the domain's evolve) agrees with the inline read model, by fleet and device type.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { DEVICE_SUMMARY, deviceSummaryProjection } from '../../infra/realtime/projections/device-summary.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { waitForHorizon } from './realtime-helpers.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

const groupRow = z.object({
  fleet_id: z.string(),
  device_type: z.string(),
  total: z.number(),
  active: z.number(),
  in_sync: z.number(),
});

async function populate(): Promise<{ deviceKey: string }> {
  const fleetA = await app.createProvisioningKey({ fleet_id: 'fleet-a' });
  const fleetB = await app.createProvisioningKey({ fleet_id: 'fleet-b' });
  const devices = [];
  for (
    const [key, type] of [[fleetA, 'raspberry-pi-4'], [fleetA, 'raspberry-pi-4'], [fleetA, 'jetson-nano'], [
      fleetB,
      'raspberry-pi-4',
    ], [fleetB, 'jetson-nano']] as const
  ) {
    const registered = await app.registerDevice(key.key, { deviceType: type });
    if (registered.response.status !== 200 && registered.response.status !== 201) {
      throw new Error(registered.response.text);
    }
    devices.push(registered);
  }
  const target = { apps: { '1000': { appId: 1000, appName: 'my-app', services: [] } }, config: {} };
  for (const d of devices.slice(0, 4)) {
    const set = await app.request('POST', `/api/v1/devices/${d.uuid}/target-state`, {
      token: app.adminToken,
      body: target,
    });
    if (set.status !== 200) throw new Error(set.text);
  }
  for (const d of devices.slice(0, 2)) {
    const report = await app.request('PATCH', '/api/v1/device/state', {
      token: d.key,
      body: { [d.uuid]: { apps: { '1000': { status: 'running', containerId: 'abc' } } } },
    });
    if (report.status !== 200) throw new Error(report.text);
  }
  const off = await app.request('PATCH', `/api/v1/devices/${devices[4]!.uuid}/active`, {
    token: app.adminToken,
    body: { is_active: false, reason: 'test' },
  });
  if (off.status !== 200) throw new Error(off.text);
  return { deviceKey: devices[0]!.key };
}

test.serial('the summary equals the read model grouped by fleet and type, and reports lag', async (t) => {
  const { deviceKey } = await populate();
  await waitForHorizon(app.db.pool);
  const response = await app.request('GET', '/api/v1/fleet/summary', { token: app.adminToken });
  t.is(response.status, 200, response.text);
  const body = response.body;

  const groups = await app.db.pool.any(sql.type(groupRow)`
    SELECT fleet_id, device_type, count(*)::int AS total, count(*) FILTER (WHERE is_active)::int AS active,
           count(*) FILTER (WHERE in_sync)::int AS in_sync
      FROM devices GROUP BY 1, 2 ORDER BY 1, 2`);
  const expectedFleets = [...new Set(groups.map((g) => g.fleet_id))].map((fleet) => {
    const rows = groups.filter((g) => g.fleet_id === fleet);
    const sum = (f: (g: typeof rows[number]) => number) => rows.reduce((n, g) => n + f(g), 0);
    return {
      fleet_id: fleet,
      total: sum((g) => g.total),
      active: sum((g) => g.active),
      inactive: sum((g) => g.total - g.active),
      in_sync: sum((g) => g.in_sync),
      drifting: sum((g) => g.total - g.in_sync),
      device_types: rows.map((g) => ({
        device_type: g.device_type,
        total: g.total,
        active: g.active,
        inactive: g.total - g.active,
        in_sync: g.in_sync,
        drifting: g.total - g.in_sync,
      })),
    };
  });
  t.deepEqual(body.fleets, expectedFleets);
  t.deepEqual(body.totals, {
    total: 5,
    active: 4,
    inactive: 1,
    in_sync: body.totals.in_sync,
    drifting: 5 - body.totals.in_sync,
  });
  t.true(body.totals.in_sync > 0 && body.totals.drifting > 0, 'both in-sync and drifting devices are present');
  t.deepEqual(body.device_types.map((d: { device_type: string; total: number }) => [d.device_type, d.total]), [[
    'jetson-nano',
    2,
  ], ['raspberry-pi-4', 3]]);
  t.is(body.projection.name, DEVICE_SUMMARY);
  t.is(body.projection.events_behind, 0);
  t.is(body.projection.seconds_behind, 0);
  t.true(Array.isArray(body.listeners));

  // every device's folded state in the projection equals the inline read model's
  const projection = deviceSummaryProjection(app.db.pool);
  const mismatches = await app.db.pool.anyFirst(sql.type(z.object({ uuid: z.string() }))`
    SELECT d.uuid FROM devices d
      LEFT JOIN projection_states p ON p.projection = ${DEVICE_SUMMARY} AND p.definition = ${projection.definition} AND p.key = d.uuid
     WHERE p.state IS DISTINCT FROM d.state`);
  t.deepEqual(mismatches, []);

  const one = await app.request('GET', '/api/v1/fleet/summary?fleet=fleet-b', { token: app.adminToken });
  t.is(one.status, 200);
  t.deepEqual(one.body.fleets, expectedFleets.filter((f) => f.fleet_id === 'fleet-b'));
  t.is(one.body.totals.total, 2);

  t.is((await app.request('GET', '/api/v1/fleet/summary')).status, 401);
  t.is((await app.request('GET', '/api/v1/fleet/summary', { token: deviceKey })).status, 403);
  const bad = await app.request('GET', '/api/v1/fleet/summary?fleets=x', { token: app.adminToken });
  t.is(bad.status, 400);
  t.regex(bad.body.error.message, /query/);
});

test.serial('the summary follows new events (read-your-writes)', async (t) => {
  const key = await app.createProvisioningKey({ fleet_id: 'fleet-c' });
  await app.registerDevice(key.key, { deviceType: 'beaglebone' });
  await waitForHorizon(app.db.pool);
  const response = await app.request('GET', '/api/v1/fleet/summary?fleet=fleet-c', { token: app.adminToken });
  t.deepEqual(response.body.totals, { total: 1, active: 1, inactive: 0, in_sync: 1, drifting: 0 });
});
