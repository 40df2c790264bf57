// The seed's four endpoints, in order, with the events and metadata they must write.
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

const uuid = '12345678-1234-1234-1234-123456789abc';
const eventRow = z.object({
  event_type: z.string(),
  aggregate_version: z.number(),
  data: z.any(),
  metadata: z.any(),
  source: z.string(),
});

test.serial('register → target → report → disable → enable writes one event each, with metadata', async (t) => {
  const { key, id: keyId } = await app.createProvisioningKey({ fleet_id: 'fleet-1' });
  const registered = await app.request('POST', '/api/v1/device/register', {
    token: key,
    headers: { 'User-Agent': 'seed-test/1.0' },
    body: {
      uuid,
      deviceName: 'test-device-001',
      deviceType: 'raspberry-pi-4',
      deviceApiKey: 'secret-key',
      macAddress: 'b8:27:eb:12:34:56',
    },
  });
  t.is(registered.status, 201, registered.text);
  t.is(registered.body.device.fleet_id, 'fleet-1');

  const target = await app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
    token: app.adminToken,
    body: {
      apps: { '1000': { appId: 1000, appName: 'my-app', services: [] } },
      config: { DEVICE_HOSTNAME: 'my-device' },
    },
  });
  t.is(target.status, 200, target.text);
  t.is(target.body.version, 1);
  t.is(target.headers.get('etag'), '"1"');

  const report = await app.request('PATCH', '/api/v1/device/state', {
    token: 'secret-key',
    body: {
      [uuid]: {
        apps: { '1000': { status: 'running', containerId: 'abc123' } },
        ip_address: '192.168.1.100',
        cpu_usage: 25.5,
        memory_usage: 45.2,
      },
    },
  });
  t.is(report.status, 200, report.text);
  // current_state.updated, and what it implies: the app's container started, the target reached (issue #5)
  t.is(report.body.events_written, 3);
  t.true(report.body.devices[uuid].in_sync);

  for (const is_active of [false, true]) {
    const toggled = await app.request('PATCH', `/api/v1/devices/${uuid}/active`, {
      token: app.adminToken,
      body: { is_active },
    });
    t.is(toggled.status, 200, toggled.text);
    t.true(toggled.body.changed);
  }

  const events = await app.db.pool.any(sql.type(eventRow)`
    SELECT event_type, aggregate_version, data, metadata, source FROM get_aggregate_events('device', ${uuid}, NULL)`);
  t.deepEqual(events.map((e) => e.event_type), [
    'device.provisioned',
    'target_state.updated',
    'reconciliation.started',
    'current_state.updated',
    'container.started',
    'reconciliation.completed',
    'device.offline',
    'device.online',
  ]);
  t.deepEqual(events.map((e) => e.aggregate_version), [1, 2, 3, 4, 5, 6, 7, 8]);
  t.true(events.every((e) => e.source === 'api'));

  const [provisioned, targetEvent, current, offline] = [
    'device.provisioned',
    'target_state.updated',
    'current_state.updated',
    'device.offline',
  ]
    .map((type) => events.find((e) => e.event_type === type));
  t.is(provisioned!.data.provisioning_key_id, keyId);
  t.is(provisioned!.metadata.provisioning_key_id, keyId);
  t.deepEqual(provisioned!.metadata.actor, { type: 'provisioning_key', id: keyId });
  t.is(provisioned!.metadata.endpoint, '/api/v1/device/register');
  t.is(provisioned!.metadata.user_agent, 'seed-test/1.0');
  t.truthy(provisioned!.metadata.request_id);
  t.truthy(provisioned!.metadata.ip_address);
  t.is(targetEvent!.metadata.endpoint, '/api/v1/devices/:uuid/target-state');
  t.is(targetEvent!.metadata.actor.type, 'admin');
  t.is(targetEvent!.data.version, 1);
  t.is(targetEvent!.data.apps_count, 1);
  t.deepEqual(targetEvent!.data.apps_added, ['1000']);
  t.is(current!.data.apps_count, 1);
  t.deepEqual(current!.metadata.actor, { type: 'device', id: uuid });
  t.is(offline!.data.previous_state, 'active');
  t.is(offline!.data.new_state, 'inactive');
  t.is(offline!.data.device_name, 'test-device-001');
  // secrets never reach the log
  const all = JSON.stringify(events);
  t.false(all.includes('secret-key'));
  t.false(all.includes(key));
});

test.serial('target-state poll: ETag is the version, If-None-Match gives 304, and it counts as a heartbeat', async (t) => {
  const first = await app.request('GET', `/api/v1/device/${uuid}/target-state`, { token: 'secret-key' });
  t.is(first.status, 200);
  t.is(first.headers.get('etag'), '"1"');
  t.deepEqual(first.body.config, { DEVICE_HOSTNAME: 'my-device' });
  const before = await app.eventCount();
  const again = await app.request('GET', `/api/v1/device/${uuid}/target-state`, {
    token: 'secret-key',
    headers: { 'If-None-Match': '"1"' },
  });
  t.is(again.status, 304);
  t.is(await app.eventCount(), before);
  const device = await app.request('GET', `/api/v1/devices/${uuid}`, { token: app.adminToken });
  t.truthy(device.body.last_seen_at);
});

test.serial('an identical report appends nothing but updates last seen', async (t) => {
  const before = await app.eventCount();
  const seenBefore = (await app.request('GET', `/api/v1/devices/${uuid}`, { token: app.adminToken })).body.last_seen_at;
  const report = await app.request('PATCH', '/api/v1/device/state', {
    token: 'secret-key',
    body: {
      [uuid]: {
        apps: { '1000': { status: 'running', containerId: 'abc123' } },
        ip_address: '192.168.1.100',
        cpu_usage: 25.5,
        memory_usage: 45.2,
      },
    },
  });
  t.is(report.status, 200);
  t.is(report.body.events_written, 0);
  t.is(await app.eventCount(), before);
  const seenAfter = (await app.request('GET', `/api/v1/devices/${uuid}`, { token: app.adminToken })).body.last_seen_at;
  t.true(seenAfter >= seenBefore);
});

test.serial('registering the same uuid again: same key → 200 and no event; another key → 409', async (t) => {
  const { key } = await app.createProvisioningKey({ fleet_id: 'fleet-1' });
  const before = await app.eventCount();
  const same = await app.request('POST', '/api/v1/device/register', {
    token: key,
    body: { uuid, deviceName: 'test-device-001', deviceType: 'raspberry-pi-4', deviceApiKey: 'secret-key' },
  });
  t.is(same.status, 200, same.text);
  t.false(same.body.created);
  const other = await app.request('POST', '/api/v1/device/register', {
    token: key,
    body: { uuid, deviceName: 'x', deviceType: 'y', deviceApiKey: 'another-key-123' },
  });
  t.is(other.status, 409);
  t.is(await app.eventCount(), before);
});

test.serial('setting the same active state again writes no event', async (t) => {
  const before = await app.eventCount();
  const r = await app.request('PATCH', `/api/v1/devices/${uuid}/active`, {
    token: app.adminToken,
    body: { is_active: true },
  });
  t.is(r.status, 200);
  t.false(r.body.changed);
  t.is(await app.eventCount(), before);
});

test.serial('a disabled device gets 403 on its device-key calls; its reason is recorded', async (t) => {
  const off = await app.request('PATCH', `/api/v1/devices/${uuid}/active`, {
    token: app.adminToken,
    body: { is_active: false, reason: 'stolen' },
  });
  t.is(off.status, 200);
  const before = await app.eventCount();
  t.is((await app.request('GET', `/api/v1/device/${uuid}/target-state`, { token: 'secret-key' })).status, 403);
  const report = await app.request('PATCH', '/api/v1/device/state', {
    token: 'secret-key',
    body: { [uuid]: { cpu_usage: 99 } },
  });
  t.is(report.status, 403);
  t.is(report.body.error.code, 'device_inactive');
  // a report identical to the last accepted one (nothing to write) is refused too
  const same = await app.request('PATCH', '/api/v1/device/state', {
    token: 'secret-key',
    body: {
      [uuid]: {
        apps: { '1000': { status: 'running', containerId: 'abc123' } },
        ip_address: '192.168.1.100',
        cpu_usage: 25.5,
        memory_usage: 45.2,
      },
    },
  });
  t.is(same.status, 403);
  t.is(await app.eventCount(), before);
  const events = await app.request('GET', `/api/v1/devices/${uuid}/events?type=device.offline`, {
    token: app.adminToken,
  });
  t.is(events.body.events.at(-1).data.reason, 'stolen');
  await app.request('PATCH', `/api/v1/devices/${uuid}/active`, { token: app.adminToken, body: { is_active: true } });
});

test.serial('admin reads: list with filters, one device with drift, events paginated', async (t) => {
  const { key } = await app.createProvisioningKey({ fleet_id: 'fleet-2' });
  const other = await app.registerDevice(key);
  await app.request('POST', `/api/v1/devices/${other.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: { '7': { appName: 'x' } } },
  });

  const fleet2 = await app.request('GET', '/api/v1/devices?fleet=fleet-2', { token: app.adminToken });
  t.deepEqual(fleet2.body.devices.map((d: { uuid: string }) => d.uuid), [other.uuid]);
  const drifting = await app.request('GET', '/api/v1/devices?in_sync=false', { token: app.adminToken });
  t.deepEqual(drifting.body.devices.map((d: { uuid: string }) => d.uuid), [other.uuid]);
  const synced = await app.request('GET', '/api/v1/devices?in_sync=true&active=true', { token: app.adminToken });
  t.deepEqual(synced.body.devices.map((d: { uuid: string }) => d.uuid), [uuid]);

  const one = await app.request('GET', `/api/v1/devices/${other.uuid}`, { token: app.adminToken });
  t.false(one.body.in_sync);
  t.deepEqual(one.body.drift.apps_missing, ['7']);
  t.truthy(one.body.drift_since);

  const page1 = await app.request('GET', `/api/v1/devices/${uuid}/events?limit=2`, { token: app.adminToken });
  t.deepEqual(page1.body.events.map((e: { aggregate_version: number }) => e.aggregate_version), [1, 2]);
  t.is(page1.body.next_after_version, 2);
  const page2 = await app.request('GET', `/api/v1/devices/${uuid}/events?limit=2&after_version=2`, {
    token: app.adminToken,
  });
  t.deepEqual(page2.body.events.map((e: { aggregate_version: number }) => e.aggregate_version), [3, 4]);
  const typed = await app.request('GET', `/api/v1/devices/${uuid}/events?type=device.online,device.offline`, {
    token: app.adminToken,
  });
  t.true(typed.body.events.every((e: { event_type: string }) => e.event_type.startsWith('device.o')));
  const future = await app.request('GET', `/api/v1/devices/${uuid}/events?since=2999-01-01T00:00:00Z`, {
    token: app.adminToken,
  });
  t.deepEqual(future.body.events, []);
});

test.serial('provisioning keys: revoked, expired and used-up keys get 403', async (t) => {
  const limited = await app.createProvisioningKey({ fleet_id: 'f', max_devices: 1 });
  t.is((await app.registerDevice(limited.key)).response.status, 201);
  const usedUp = await app.registerDevice(limited.key);
  t.is(usedUp.response.status, 403);
  t.is(usedUp.response.body.error.code, 'provisioning_key_used_up');

  const revoked = await app.createProvisioningKey({ fleet_id: 'f' });
  const del = await app.request('DELETE', `/api/v1/provisioning-keys/${revoked.id}`, { token: app.adminToken });
  t.is(del.status, 200);
  t.truthy(del.body.revoked_at);
  t.is((await app.registerDevice(revoked.key)).response.status, 403);

  const before = await app.eventCount();
  const keyEvents = await app.db.pool.any(sql.type(z.object({ event_type: z.string() }))`
    SELECT event_type FROM events WHERE aggregate_type = 'provisioning_key' AND aggregate_id = ${revoked.id} ORDER BY aggregate_version`);
  t.deepEqual(keyEvents.map((e) => e.event_type), ['provisioning_key.created', 'provisioning_key.revoked']);
  t.is(await app.eventCount(), before);
  t.deepEqual(app.errors, []);
});
