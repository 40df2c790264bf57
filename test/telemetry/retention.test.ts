// The telemetry tables' own retention (issue #15): the maintenance job creates device_metrics
// and device_logs partitions ahead and drops each table's days past its own retention
// (METRICS_RETENTION_DAYS, LOGS_RETENTION_DAYS), whole, without touching the event log.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { createMaintenanceJob } from '../../infra/retention/maintenance-job.ts';
import { listPartitions } from '../../infra/retention/partition-maintenance.ts';
import { createLogPartitionCache, insertDeviceLogs } from '../../infra/telemetry/device-logs.ts';
import { insertMetrics } from '../../infra/telemetry/metrics-series.ts';
import { createTelemetryPartitionCache } from '../../infra/telemetry/partitions.ts';
import { createTestDatabase } from '../helpers/database.ts';

const DAY = 86_400_000;
const NOW = Date.parse('2026-06-30T12:00:00.000Z');
const day = (n: number) => new Date(NOW - n * DAY).toISOString();
const count = z.object({ n: z.number() });

test('each telemetry table keeps its own days; the event log is not touched', async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const metricsPartitions = createTelemetryPartitionCache('device_metrics');
  const logPartitions = createLogPartitionCache();
  // a sample and a log line on each of the last 40 days
  for (let n = 0; n < 40; n += 1) {
    await metricsPartitions.ensure(db.pool, [day(n)]);
    await insertMetrics(db.pool, [{ device_uuid: 'd1', reported_at: day(n), cpu_usage: n }]);
    await insertDeviceLogs(db.pool, logPartitions, 'd1', day(n), [{
      timestamp: day(n),
      level: 'info',
      source_type: null,
      source_name: null,
      service_name: null,
      service_id: null,
      container_id: null,
      is_stderr: false,
      is_system: false,
      message: `day ${n}`,
      truncated: false,
    }]);
  }
  const eventsBefore = (await listPartitions(db.pool)).map((p) => p.name);
  const errors: unknown[] = [];
  const job = createMaintenanceJob(db.pool, {
    clock: () => new Date(NOW),
    daysAhead: 2,
    retentionDays: 0,
    telemetry: { metricsDays: 30, logsDays: 14 },
    onError: (_m, e) => errors.push(e),
  });
  const run = await job.runOnce();
  t.deepEqual(errors, []);
  t.is(run.telemetry?.skipped, null);
  const rows = (table: 'device_metrics' | 'device_logs') =>
    db.pool.oneFirst(sql.type(count)`SELECT count(*)::int AS n FROM ${sql.identifier([table])}`);
  // today and the 30 (14) whole days before it stay
  t.is(await rows('device_metrics'), 31);
  t.is(await rows('device_logs'), 15);
  const oldest = async (table: string) => (await listPartitions(db.pool, table))[0]!.day;
  t.is(await oldest('device_metrics'), '2026-05-31');
  t.is(await oldest('device_logs'), '2026-06-16');
  // partitions ahead for both
  const last = async (table: string) => (await listPartitions(db.pool, table)).at(-1)!.day;
  t.is(await last('device_metrics'), '2026-07-02');
  t.is(await last('device_logs'), '2026-07-02');
  t.is(run.telemetry?.dropped.filter((d) => d.table === 'device_metrics').length, 9);
  t.is(run.telemetry?.dropped.filter((d) => d.table === 'device_logs').length, 25);
  const eventsAfter = (await listPartitions(db.pool)).map((p) => p.name);
  t.true(
    eventsBefore.every((name) => eventsAfter.includes(name)),
    "the events partitions are retention's own business",
  );
  // 0 keeps everything
  const keep = await createMaintenanceJob(db.pool, {
    clock: () => new Date(NOW + 100 * DAY),
    daysAhead: 0,
    retentionDays: 0,
    telemetry: { metricsDays: 0, logsDays: 0 },
  }).runOnce();
  t.deepEqual(keep.telemetry?.dropped, []);
  t.is(await rows('device_metrics'), 31);
});
