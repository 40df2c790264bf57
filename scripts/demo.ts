// `npm run demo`: the seed's quick test against a running service. Provisions a device,
// sets a target, reports current state, disables and re-enables it; after each step it
// queries the event store and prints the event breakdown, then a summary.
// DEMO_URL (default http://localhost:4002) and ADMIN_TOKEN (default: DATA_DIR/admin-token).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'slonik';
import { z } from 'zod';
import { openCliDatabase } from '../app/cli/cli-database.ts';

const baseUrl = process.env['DEMO_URL'] ?? 'http://localhost:4002';
const db = await openCliDatabase(() => {});
const adminToken = process.env['ADMIN_TOKEN'] ??
  (await readFile(path.join(db.config.DATA_DIR, 'admin-token'), 'utf8').catch(() => '')).trim();
if (adminToken === '') {
  console.error('no admin token: set ADMIN_TOKEN or start the service once so DATA_DIR/admin-token exists');
  process.exit(2);
}

// deno-lint-ignore no-explicit-any -- the demo prints whatever the API answers
async function call(method: string, route: string, token: string, body?: unknown): Promise<any> {
  const response = await fetch(`${baseUrl}${route}`, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      'User-Agent': 'devicetrail-demo',
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }).catch((error: Error) => {
    console.error(`cannot reach ${baseUrl} (${error.message}); start the service with \`npm start\` first`);
    process.exit(2);
  });
  const json = await response.json().catch(() => null);
  if (!response.ok) throw new Error(`${method} ${route} → ${response.status} ${JSON.stringify(json)}`);
  return json;
}

const uuid = crypto.randomUUID();
const breakdownRow = z.object({ event_type: z.string(), n: z.number(), last: z.string() });
const steps: { step: string; events: number }[] = [];

async function show(step: string): Promise<void> {
  const rows = await db.pool.any(sql.type(breakdownRow)`
    SELECT event_type, count(*)::int AS n, max("timestamp") AS last
      FROM get_aggregate_events('device', ${uuid}, NULL) GROUP BY event_type ORDER BY min(aggregate_version)`);
  const total = rows.reduce((s, r) => s + r.n, 0);
  steps.push({ step, events: total });
  console.log(`\n▶ ${step}\n  events for device ${uuid}: ${total}`);
  for (const r of rows) console.log(`    ${r.event_type.padEnd(24)} ${String(r.n).padStart(3)}   last at ${r.last}`);
}

try {
  const key = await call('POST', '/api/v1/provisioning-keys', adminToken, {
    fleet_id: 'demo-fleet',
    description: 'npm run demo',
    max_devices: 1,
  });
  const deviceKey = `demo-${crypto.randomUUID()}`;
  await call('POST', '/api/v1/device/register', key.key, {
    uuid,
    deviceName: 'test-device-001',
    deviceType: 'raspberry-pi-4',
    deviceApiKey: deviceKey,
    macAddress: 'b8:27:eb:12:34:56',
  });
  await show('1. device registered (device.provisioned)');
  await call('POST', `/api/v1/devices/${uuid}/target-state`, adminToken, {
    apps: { '1000': { appId: 1000, appName: 'my-app', services: [{ serviceName: 'main', image: 'my-app:1' }] } },
    config: { DEVICE_HOSTNAME: 'my-device' },
  });
  await show('2. target state set (target_state.updated)');
  await call('PATCH', '/api/v1/device/state', deviceKey, {
    [uuid]: {
      apps: { '1000': { status: 'running', containerId: 'abc123' } },
      ip_address: '192.168.1.100',
      cpu_usage: 25.5,
      memory_usage: 45.2,
    },
  });
  await show('3. current state reported (current_state.updated)');
  await call('PATCH', `/api/v1/devices/${uuid}/active`, adminToken, { is_active: false, reason: 'demo: disable' });
  await show('4. device disabled (device.offline)');
  await call('PATCH', `/api/v1/devices/${uuid}/active`, adminToken, { is_active: true, reason: 'demo: re-enable' });
  await show('5. device re-enabled (device.online)');
  const device = await call('GET', `/api/v1/devices/${uuid}`, adminToken);
  console.log('\n== summary ==');
  for (const s of steps) console.log(`  ${s.step.padEnd(48)} events so far: ${s.events}`);
  console.log(
    `  device ${uuid}: version ${device.version}, active ${device.is_active}, in sync ${device.in_sync}, target v${device.target?.version}`,
  );
  console.log(
    `  query it yourself: npm run psql -- -c "SELECT * FROM get_aggregate_events('device', '${uuid}', NULL);"`,
  );
} finally {
  await db.close();
}
