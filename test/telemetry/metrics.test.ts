// Telemetry is not state (issue #15, item 2): reports whose only changes are metrics append no
// event and land in the device_metrics series, readable downsampled from
// GET /api/v1/devices/:uuid/metrics; a report that changes state appends current_state.updated
// with the metrics it carried, and its sample lands in the series too.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const T0 = Date.parse('2026-09-01T10:00:00.000Z');

/** An app whose clock the test sets, with one device that has reported its apps once. */
async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  let now = T0;
  const app = await startTestApp({ clock: () => new Date(now) });
  t.teardown(() => app.close());
  const { key: provisioningKey } = await app.createProvisioningKey();
  const device = await app.registerDevice(provisioningKey);
  const at = (offsetMs: number) => {
    now = T0 + offsetMs;
  };
  const report = (body: Record<string, unknown>, token = device.key) =>
    app.request('PATCH', '/api/v1/device/state', { token, body: { [device.uuid]: body } });
  return { app, device, at, report };
}

const samples = (app: TestApp, uuid: string) =>
  app.db.pool.any(sql.type(z.object({ reported_at: z.string(), cpu_usage: z.number().nullable() }))`
    SELECT reported_at, cpu_usage FROM device_metrics WHERE device_uuid = ${uuid} ORDER BY reported_at`);

const deviceEventTypes = async (app: TestApp, uuid: string): Promise<string[]> =>
  (await app.db.pool.anyFirst(sql.type(z.object({ event_type: z.string() }))`
    SELECT event_type FROM events WHERE aggregate_id = ${uuid} ORDER BY aggregate_version`)) as string[];

test('metrics-only reports append no event and are read back from the metrics endpoint', async (t) => {
  const { app, device, at, report } = await setup(t);
  const apps = { '1000': { status: 'running', containerId: 'abc123' } };
  t.is((await report({ apps, ip_address: '192.168.1.100', cpu_usage: 20, uptime: 100 })).status, 200);
  const before = await app.eventCount();

  for (let i = 1; i <= 10; i += 1) {
    at(i * 30_000);
    const answer = await report({ apps, cpu_usage: 20 + i, memory_usage: 40 + i, uptime: 100 + i * 30 });
    t.is(answer.status, 200);
    t.is(answer.body.events_written, 0, `report ${i} changed only metrics`);
    t.is(answer.body.devices[device.uuid].events_written, 0);
  }
  t.is(await app.eventCount(), before, 'no event for ten metrics-only reports');
  // each is still a contact (recorded in the samples' statement)
  const view = await app.request('GET', `/api/v1/devices/${device.uuid}`, { token: app.adminToken });
  t.is(view.body.last_seen_at, '2026-09-01T10:05:00.000Z');
  t.is((await samples(app, device.uuid)).length, 11, 'every report that carried metrics is a sample');

  at(10 * 60_000);
  const series = await app.request(
    'GET',
    `/api/v1/devices/${device.uuid}/metrics?since=2026-09-01T10:00:00Z&until=2026-09-01T10:10:00Z&step=1m`,
    { token: app.adminToken },
  );
  t.is(series.status, 200, series.text);
  t.is(series.body.step, '1m');
  t.is(series.body.step_ms, 60_000);
  t.deepEqual(series.body.points.map((p: { t: string }) => p.t), [
    '2026-09-01T10:00:00.000Z',
    '2026-09-01T10:01:00.000Z',
    '2026-09-01T10:02:00.000Z',
    '2026-09-01T10:03:00.000Z',
    '2026-09-01T10:04:00.000Z',
    '2026-09-01T10:05:00.000Z',
  ]);
  // 10:00:00 (20) and 10:00:30 (21); 10:01:00 (22) and 10:01:30 (23)…
  t.deepEqual(series.body.points[0].cpu_usage, { avg: 20.5, min: 20, max: 21 });
  t.is(series.body.points[0].samples, 2);
  t.deepEqual(series.body.points[1].memory_usage, { avg: 42.5, min: 42, max: 43 });
  t.is(series.body.points[0].memory_usage.min, 41, 'a bucket holds the gauges its samples had');
  t.is(series.body.points[5].samples, 1);
  t.is(series.body.points[5].uptime.max, 400);
  t.is(series.body.latest.cpu_usage, 30);
  t.is(series.body.latest.reported_at, '2026-09-01T10:05:00.000Z');
});

test('a report that changes state appends current_state.updated with the metrics it carried', async (t) => {
  const { app, device, at, report } = await setup(t);
  t.is((await report({ apps: { '1': { status: 'running' } }, cpu_usage: 5, uptime: 10 })).status, 200);
  at(60_000);
  t.is((await report({ cpu_usage: 6, uptime: 70 })).body.events_written, 0);
  at(120_000);
  const changed = await report({ apps: { '1': { status: 'exited', exitCode: 1 } }, cpu_usage: 7, uptime: 130 });
  t.is(changed.status, 200);
  t.true(changed.body.events_written >= 1);
  const updates = await app.db.pool.anyFirst(sql.type(z.object({ data: z.record(z.unknown()) }))`
    SELECT data FROM events WHERE aggregate_id = ${device.uuid} AND event_type = 'current_state.updated'
     ORDER BY aggregate_version`);
  t.is(updates.length, 2);
  t.deepEqual(updates[1]!['resources'], { cpu_usage: 7 });
  t.deepEqual(updates[1]!['system'], { uptime: 130 });
  t.deepEqual((await samples(app, device.uuid)).map((s) => s.cpu_usage), [5, 6, 7]);
  // the state change's sample is committed with its events, in the batch writer's statement
  const together = await app.db.pool.oneFirst(sql.type(z.object({ same: z.boolean() }))`
    SELECT (SELECT xmin::text::int8 FROM device_metrics WHERE device_uuid = ${device.uuid} AND cpu_usage = 7) =
           (SELECT transaction_id::text::int8 % 4294967296 FROM events
             WHERE aggregate_id = ${device.uuid} AND event_type = 'current_state.updated'
             ORDER BY aggregate_version DESC LIMIT 1) AS same`);
  t.true(together);

  // the device view: the state as the log folds it (metrics as the last state change carried them)
  const view = await app.request('GET', `/api/v1/devices/${device.uuid}`, { token: app.adminToken });
  t.is(view.body.current.resources.cpu_usage, 7);

  // a system field that is state (not uptime) is a change on its own
  at(180_000);
  t.is((await report({ ip_address: '10.0.0.9', cpu_usage: 8 })).body.events_written, 1);
  at(240_000);
  t.is((await report({ ip_address: '10.0.0.9', cpu_usage: 9, uptime: 250 })).body.events_written, 0);
});

test("a device's first report with nothing but metrics appends no event", async (t) => {
  const { app, device, report } = await setup(t);
  const before = await deviceEventTypes(app, device.uuid);
  const answer = await report({ cpu_usage: 1, memory_usage: 2, uptime: 3 });
  t.is(answer.status, 200);
  t.is(answer.body.events_written, 0);
  t.deepEqual(await deviceEventTypes(app, device.uuid), before);
  t.is((await samples(app, device.uuid)).length, 1);
});

test("the agent's process and network tables are telemetry: stored in the series, never in events", async (t) => {
  const { app, device, report } = await setup(t);
  const topProcesses = [
    { pid: 1, name: 'init', cpu: 0.1, mem: 0.5, command: '/sbin/init' },
    { pid: 812, name: 'node', cpu: 12.5, mem: 8.25, extra: 'dropped' },
  ];
  const networkInterfaces = [{
    name: 'eth0',
    ip4: '192.168.1.20',
    ip6: null,
    mac: 'b8:27:eb:00:00:01',
    type: 'wired',
    default: true,
    virtual: false,
    operstate: 'up',
  }];
  const answer = await report({
    apps: { '1': { status: 'running' } },
    cpu_usage: 12,
    top_processes: topProcesses,
    network_interfaces: networkInterfaces,
  });
  t.is(answer.status, 200, answer.text);
  t.deepEqual(answer.body.ignored_fields, [`body.${device.uuid}.top_processes.1.extra`]);
  const row = await app.db.pool.one(sql.type(z.object({ top_processes: z.unknown(), network_interfaces: z.unknown() }))`
    SELECT top_processes, network_interfaces FROM device_metrics WHERE device_uuid = ${device.uuid}`);
  t.deepEqual(row.top_processes, [topProcesses[0], { pid: 812, name: 'node', cpu: 12.5, mem: 8.25 }]);
  t.deepEqual(row.network_interfaces, networkInterfaces);
  const text = await app.db.pool.oneFirst(sql.type(z.object({ t: z.string() }))`
    SELECT coalesce(string_agg(data::text, ''), '') AS t FROM events WHERE aggregate_id = ${device.uuid}`);
  t.false(text.includes('top_processes') || text.includes('/sbin/init') || text.includes('eth0'));

  const latest = await app.request('GET', `/api/v1/devices/${device.uuid}/metrics`, { token: app.adminToken });
  t.is(latest.status, 200);
  t.is(latest.body.latest.network_interfaces[0].name, 'eth0');

  // known fields keep their strict types
  const wrong = await report({ top_processes: [{ pid: 'one' }] });
  t.is(wrong.status, 400);
  t.regex(wrong.body.error.message, /top_processes\.0\.pid/);
});

test('a refused report stores no sample: another device, a disabled device', async (t) => {
  const { app, device, report } = await setup(t);
  const { key } = await app.createProvisioningKey();
  const other = await app.registerDevice(key);
  t.is((await report({ cpu_usage: 1 }, other.key)).status, 403);
  t.is(
    (await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
      token: app.adminToken,
      body: { is_active: false },
    })).status,
    200,
  );
  t.is((await report({ cpu_usage: 2 })).status, 403);
  t.deepEqual(await samples(app, device.uuid), []);
  t.deepEqual(await samples(app, other.uuid), []);
});

test('the metrics endpoint: admin only, bounded buckets, a 404 for an unknown device', async (t) => {
  const { app, device, report } = await setup(t);
  await report({ cpu_usage: 1 });
  const path = `/api/v1/devices/${device.uuid}/metrics`;
  t.is((await app.request('GET', path, { token: device.key })).status, 403);
  t.is((await app.request('GET', path)).status, 401);
  const fine = await app.request('GET', `${path}?since=2026-08-01T00:00:00Z&until=2026-09-01T00:00:00Z&step=1s`, {
    token: app.adminToken,
  });
  t.is(fine.status, 400);
  t.regex(fine.body.error.message, /^query\.step: 1s makes 2678401 buckets/);
  const reversed = await app.request('GET', `${path}?since=2026-09-02T00:00:00Z&until=2026-09-01T00:00:00Z`, {
    token: app.adminToken,
  });
  t.is(reversed.status, 400);
  t.is((await app.request('GET', `${path}?step=fast`, { token: app.adminToken })).status, 400);
  t.is((await app.request('GET', `${path}?bogus=1`, { token: app.adminToken })).status, 400);
  const unknown = await app.request('GET', `/api/v1/devices/${crypto.randomUUID()}/metrics`, {
    token: app.adminToken,
  });
  t.is(unknown.status, 404);
  // no step: the finest of the usual steps with at most 300 buckets (24 h → 5m)
  const auto = await app.request('GET', path, { token: app.adminToken });
  t.is(auto.status, 200);
  t.is(auto.body.step, '5m');
  t.is(auto.body.points.length, 1);
});

test('a metrics-only report decided from a stale memory of the device is decided again, its sample stored once', async (t) => {
  const { app, device, at, report } = await setup(t);
  const apps = { '1': { status: 'running' } };
  // the report path remembers the device at this version…
  t.is((await report({ apps, cpu_usage: 1 })).status, 200);
  t.is((await report({ apps, cpu_usage: 2 })).body.events_written, 0);
  // …then other writers move its stream on (an admin disables and enables it)
  for (const isActive of [false, true]) {
    const toggled = await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
      token: app.adminToken,
      body: { is_active: isActive },
    });
    t.is(toggled.status, 200);
  }
  const head = await app.db.pool.oneFirst(sql.type(z.object({ version: z.number() }))`
    SELECT version FROM streams WHERE aggregate_id = ${device.uuid}`);
  at(60_000);
  const answer = await report({ apps, cpu_usage: 3 });
  t.is(answer.status, 200);
  t.is(answer.body.events_written, 0);
  t.is(answer.body.devices[device.uuid].version, head, 'the answer is the fresh head, not the remembered one');
  t.deepEqual((await samples(app, device.uuid)).map((s) => s.cpu_usage), [1, 2, 3]);
  // and from then on the memory is fresh again
  at(120_000);
  t.is((await report({ apps, cpu_usage: 4 })).body.devices[device.uuid].version, head);
  t.deepEqual((await samples(app, device.uuid)).map((s) => s.cpu_usage), [1, 2, 3, 4]);
});

test('the largest finite values a report may carry are averaged into a bucket without overflowing (a 500 before)', async (t) => {
  const { app, device, at, report } = await setup(t);
  t.is((await report({ cpu_usage: 1e308, memory_usage: -1.7e308 })).status, 200);
  at(1000);
  t.is((await report({ cpu_usage: 1.5e308, memory_usage: -1.7e308 })).status, 200);
  const series = await app.request(
    'GET',
    `/api/v1/devices/${device.uuid}/metrics?since=2026-09-01T09:00:00Z&until=2026-09-01T11:00:00Z&step=1h`,
    { token: app.adminToken },
  );
  t.is(series.status, 200);
  t.is(series.body.points.length, 1);
  t.is(series.body.points[0].samples, 2);
  t.is(series.body.points[0].cpu_usage.avg, 1.25e308);
  t.is(series.body.points[0].memory_usage.avg, -1.7e308);
  t.is(series.body.points[0].cpu_usage.max, 1.5e308);
});
