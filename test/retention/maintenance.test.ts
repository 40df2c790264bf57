// Partition maintenance and retention from several instances at once: no error, no
// duplicate or overlapping partition, nothing dropped twice.
import test from 'ava';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { createMaintenanceJob } from '../../infra/retention/maintenance-job.ts';
import { listPartitions, runPartitionMaintenance } from '../../infra/retention/partition-maintenance.ts';
import { runRetention } from '../../infra/retention/retention.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { DAY, writeFleet } from './scenario.ts';

let db: TestDatabase;

test.before(async () => {
  db = await createTestDatabase();
});

test.after.always(async () => {
  await db?.drop();
});

test.serial('maintenance run twice concurrently from two connections creates each day once', async (t) => {
  const other = await createDatabasePool(db.url, { maximumPoolSize: 2 });
  try {
    const clock = () => new Date('2031-01-01T10:00:00.000Z');
    const passes = await Promise.all(
      [db.pool, other, db.pool, other].map((pool) => runPartitionMaintenance(pool, { clock, daysAhead: 20 })),
    );
    for (const pass of passes) t.is(pass.ensured.length, 21);
    const partitions = (await listPartitions(db.pool)).filter((p) => p.day >= '2031-01-01');
    t.is(partitions.length, 21);
    t.is(new Set(partitions.map((p) => p.name)).size, 21);
    partitions.forEach((p, i) => {
      t.is(p.day, new Date(Date.parse('2031-01-01T00:00:00.000Z') + i * DAY).toISOString().slice(0, 10));
      t.is(Date.parse(p.to) - Date.parse(p.from), DAY);
    });
    const again = await runPartitionMaintenance(other, { clock, daysAhead: 20 });
    t.deepEqual(again.created, []);
  } finally {
    await other.end();
  }
});

test.serial('retention from two instances at once: one works, the other skips or finds nothing; nothing drops twice', async (t) => {
  const now = '2026-05-01T12:00:00.000Z';
  await writeFleet(db.pool, { now, devices: 3, days: 40, eventsPerDevice: 20 });
  const other = await createDatabasePool(db.url, { maximumPoolSize: 2 });
  try {
    const clock = () => new Date(now);
    const due = (await listPartitions(db.pool)).filter((p) =>
      Date.parse(p.to) <= Date.parse('2026-04-01T00:00:00.000Z')
    ).map((p) => p.name);
    const runs = await Promise.all([db.pool, other].map((pool) => runRetention(pool, { retentionDays: 30, clock })));
    const dropped = runs.flatMap((r) => r.dropped.map((d) => d.name));
    t.is(new Set(dropped).size, dropped.length);
    t.true(due.length >= 5);
    t.deepEqual(dropped.sort(), due);
    t.true(runs.every((r) => r.kept.length === 0));
    const left = await listPartitions(db.pool);
    t.true(left.every((p) => Date.parse(p.to) > Date.parse('2026-04-01T00:00:00.000Z')));
  } finally {
    await other.end();
  }
});

test.serial('the job runs a pass at start and stops cleanly; RETENTION_DAYS=0 keeps everything', async (t) => {
  const before = await listPartitions(db.pool);
  const errors: unknown[] = [];
  const job = createMaintenanceJob(db.pool, {
    clock: () => new Date('2031-02-01T00:00:00.000Z'),
    daysAhead: 3,
    retentionDays: 0,
    onError: (_m, e) => errors.push(e),
  });
  const pass = await job.runOnce();
  t.is(pass.retention?.skipped, 'disabled');
  t.deepEqual(pass.created, ['events_20310201', 'events_20310202', 'events_20310203', 'events_20310204']);
  job.start();
  await job.stop();
  t.deepEqual(errors, []);
  t.is((await listPartitions(db.pool)).length, before.length + 4);
});
