// The seed's SQL, verbatim, against a database the API has written to.
import test from 'ava';
import pg from 'pg';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
let client: pg.Client;
const uuid = '12345678-1234-1234-1234-123456789abc';

test.before(async () => {
  app = await startTestApp();
  const { key } = await app.createProvisioningKey();
  await app.registerDevice(key, { uuid, deviceApiKey: 'secret-key' });
  const other = await app.registerDevice(key);
  for (
    const apps of [{ '1000': { appId: 1000, appName: 'my-app' } }, { '1000': { appId: 1000 }, '1001': { appId: 1001 } }]
  ) {
    await app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
      token: app.adminToken,
      body: { apps, config: {} },
    });
  }
  await app.request('PATCH', '/api/v1/device/state', {
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
  // the other device reports twice (a state change each: metrics alone append no event, issue
  // #15), then gets a newer target it has not reported against yet
  for (const n of [1, 2]) {
    await app.request('PATCH', '/api/v1/device/state', {
      token: other.key,
      body: { [other.uuid]: { local_ip: `10.0.0.${n}`, cpu_usage: n } },
    });
  }
  await app.request('POST', `/api/v1/devices/${other.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: {} },
  });
  client = new pg.Client({ connectionString: app.db.url });
  await client.connect();
});
test.after.always(async () => {
  await client?.end();
  await app?.close();
});

test('get_aggregate_events', async (t) => {
  const { rows } = await client.query(
    `SELECT * FROM get_aggregate_events('device', '12345678-1234-1234-1234-123456789abc', NULL);`,
  );
  // with the lifecycle events a target update and a report imply (issue #5)
  t.deepEqual(rows.map((r) => r.event_type), [
    'device.provisioned',
    'target_state.updated',
    'reconciliation.started',
    'target_state.updated',
    'reconciliation.failed',
    'reconciliation.started',
    'current_state.updated',
    'container.started',
  ]);
  for (
    const column of [
      'event_id',
      'event_type',
      'aggregate_type',
      'aggregate_id',
      'data',
      'metadata',
      'timestamp',
      'source',
    ]
  ) t.true(column in rows[0]!, column);
});

test('all target state changes, with version and apps_count filled', async (t) => {
  const { rows } = await client.query(`SELECT 
  event_id,
  aggregate_id as device_uuid,
  data->>'version' as version,
  data->>'apps_count' as apps_count,
  timestamp
FROM events
WHERE event_type = 'target_state.updated'
ORDER BY timestamp DESC;`);
  const mine = rows.filter((r) => r.device_uuid === uuid);
  t.deepEqual(mine.map((r) => [r.version, r.apps_count]), [['2', '2'], ['1', '1']]);
  t.is(rows.length, 3);
});

test('recent events', async (t) => {
  const { rows } = await client.query(`SELECT 
  event_type,
  aggregate_type,
  aggregate_id,
  timestamp,
  source
FROM events
ORDER BY timestamp DESC
LIMIT 20;`);
  t.is(rows.length, 13); // 1 key created, 2 provisioned, 3 targets, 3 reports, 3 reconciliation, 1 container
  t.true(rows.every((r) => r.source === 'api'));
  t.is(rows[0]!.event_type, 'target_state.updated');
});

test('analytics: most active devices', async (t) => {
  const { rows } = await client.query(`SELECT 
  aggregate_id as device_uuid,
  COUNT(*) as event_count
FROM events
WHERE event_type = 'current_state.updated'
  AND timestamp > NOW() - INTERVAL '24 hours'
GROUP BY aggregate_id
ORDER BY event_count DESC
LIMIT 10;`);
  t.is(rows.length, 2);
  t.is(rows[0]!.event_count, '2');
  t.is(rows[1]!.device_uuid, uuid);
});

test('analytics: target vs current drift', async (t) => {
  const { rows } = await client.query(`WITH target_updates AS (
  SELECT 
    aggregate_id,
    MAX(timestamp) as last_target_update
  FROM events
  WHERE event_type = 'target_state.updated'
  GROUP BY aggregate_id
),
current_updates AS (
  SELECT 
    aggregate_id,
    MAX(timestamp) as last_current_update
  FROM events
  WHERE event_type = 'current_state.updated'
  GROUP BY aggregate_id
)
SELECT 
  t.aggregate_id as device_uuid,
  t.last_target_update,
  c.last_current_update,
  (c.last_current_update - t.last_target_update) as drift_duration
FROM target_updates t
LEFT JOIN current_updates c ON t.aggregate_id = c.aggregate_id
WHERE c.last_current_update < t.last_target_update
ORDER BY drift_duration DESC;`);
  // only the other device's last report predates its last target
  t.is(rows.length, 1);
  t.not(rows[0]!.device_uuid, uuid);
});
