// /metrics: Prometheus text with request and event counters that move with traffic,
// pool, partition and listener-lag gauges; readable by admins or METRICS_TOKEN only.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { createMetrics, registerLagGauge } from '../../app/observability/metrics.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';
import { sample, startOpsApp } from './ops-app.ts';

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';

test('a scrape shows request and event counters moving after traffic', async (t) => {
  const app = await startOpsApp({ metricsToken: METRICS_TOKEN });
  t.teardown(() => app.close());
  const scrape = async () => {
    const r = await app.request('GET', '/metrics', { token: METRICS_TOKEN });
    t.is(r.status, 200);
    t.regex(r.headers.get('content-type') ?? '', /^text\/plain/);
    return r.text;
  };
  const before = await scrape();
  const register = { method: 'POST', route: '/api/v1/device/register', status: '201' };
  const target = { method: 'POST', route: '/api/v1/devices/:uuid/target-state', status: '200' };

  const device = await app.registerDevice();
  const set = await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: { A: '1' } },
  });
  t.is(set.status, 200);
  const report = await app.request('PATCH', '/api/v1/device/state', {
    token: device.key,
    body: { [device.uuid]: { local_ip: '10.0.0.12', cpu_usage: 12.5 } },
  });
  t.is(report.status, 200);
  const missing = await app.request('GET', `/api/v1/devices/${crypto.randomUUID()}`, { token: app.adminToken });
  t.is(missing.status, 404);

  const after = await scrape();
  t.is(
    sample(after, 'devicetrail_http_requests_total', register) -
      sample(before, 'devicetrail_http_requests_total', register),
    1,
  );
  t.is(
    sample(after, 'devicetrail_http_requests_total', target) -
      sample(before, 'devicetrail_http_requests_total', target),
    1,
  );
  t.is(
    sample(after, 'devicetrail_http_requests_total', { route: '/api/v1/devices/:uuid', status: '404' }),
    1,
    'routes are labelled by pattern, not by path',
  );
  t.is(sample(after, 'devicetrail_http_request_duration_seconds_count', register), 1);
  t.true(sample(after, 'devicetrail_http_request_duration_seconds_bucket', { ...register, le: '+Inf' }) === 1);
  for (
    const type of ['provisioning_key.created', 'device.provisioned', 'target_state.updated', 'current_state.updated']
  ) {
    t.true(
      sample(after, 'devicetrail_events_appended_total', { event_type: type }) -
          sample(before, 'devicetrail_events_appended_total', { event_type: type }) >= 1,
      `events appended: ${type}`,
    );
  }
  const appendedEvents = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`,
  );
  t.is(sample(after, 'devicetrail_append_batch_size_sum'), appendedEvents, 'every stored event was counted once');
  t.true(sample(after, 'devicetrail_append_batch_size_count') >= 4);
  t.true(after.includes('devicetrail_db_pool_connections{state="max"} 10'));
});

test('/metrics wants an admin token or METRICS_TOKEN: 401 without, 403 for a device key', async (t) => {
  const app = await startOpsApp({ metricsToken: METRICS_TOKEN });
  t.teardown(() => app.close());
  const device = await app.registerDevice();
  t.is((await app.request('GET', '/metrics')).status, 401);
  t.is((await app.request('GET', '/metrics', { token: 'not-the-metrics-token-0123456789' })).status, 401);
  t.is((await app.request('GET', '/metrics', { token: device.key })).status, 403);
  t.is((await app.request('GET', '/metrics', { token: app.adminToken })).status, 200);
  t.is((await app.request('GET', '/metrics', { token: METRICS_TOKEN })).status, 200);
});

test('without METRICS_TOKEN only admins may scrape', async (t) => {
  const app = await startOpsApp();
  t.teardown(() => app.close());
  t.is((await app.request('GET', '/metrics', { token: METRICS_TOKEN })).status, 401);
  t.is((await app.request('GET', '/metrics', { token: app.adminToken })).status, 200);
});

test('partition gauges count the events partitions and the days ahead', async (t) => {
  const app = await startOpsApp();
  t.teardown(() => app.close());
  await ensurePartitionsAhead(app.db.pool, new Date(), 3);
  const text = (await app.request('GET', '/metrics', { token: app.adminToken })).text;
  t.true(sample(text, 'devicetrail_events_partitions') >= 4);
  t.true(sample(text, 'devicetrail_events_partition_days_ahead') >= 3);
});

test('registered listener lag is reported per listener and disappears when unregistered', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const off = registerLagGauge('test-listener', async () => ({ events: 42, seconds: 3.5 }));
  const offNumber = registerLagGauge('plain-listener', () => 7);
  const offBroken = registerLagGauge('broken-listener', () => {
    throw new Error('cannot tell');
  });
  t.teardown(() => {
    off();
    offNumber();
    offBroken();
  });
  const text = await metrics.registry.metrics();
  t.is(sample(text, 'devicetrail_listener_lag_events', { listener: 'test-listener' }), 42);
  t.is(sample(text, 'devicetrail_listener_lag_seconds', { listener: 'test-listener' }), 3.5);
  t.is(sample(text, 'devicetrail_listener_lag_events', { listener: 'plain-listener' }), 7);
  t.false(text.includes('listener="broken-listener"'), 'a failing source is left out, the scrape still works');
  off();
  t.false((await metrics.registry.metrics()).includes('listener="test-listener"'));
});
