// Tamper evidence: changes made as a superuser behind the immutability triggers are found by
// verify, which names the first event that does not match and why; retention refuses to
// drop a broken chain.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { listPartitions } from '../../infra/retention/partition-maintenance.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { RetentionError, runRetention } from '../../infra/retention/retention.ts';
import { verifyChains } from '../../infra/event-store/verify.ts';
import { runCli } from '../../replay/cli.ts';
import type { CommandContext } from '../../replay/command.ts';
import { openFixtures } from '../../infra/replay/fixture-source.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { DAY, writeFleet } from './scenario.ts';

const NOW = '2026-04-11T12:00:00.000Z';
const eventRow = z.object({ event_id: z.string(), aggregate_version: z.number(), timestamp: z.string() });

let db: TestDatabase;
let uuids: string[] = [];

const eventAt = (uuid: string, version: number) =>
  db.pool.one(sql.type(eventRow)`
  SELECT event_id, aggregate_version, "timestamp" FROM events WHERE aggregate_id = ${uuid} AND aggregate_version = ${version}`);

/** Runs statements as a superuser with triggers off (session_replication_role = replica). */
async function behindTheTriggers(statement: ReturnType<typeof sql.unsafe>): Promise<void> {
  await db.pool.connect(async (connection) => {
    await connection.query(sql.unsafe`SET session_replication_role = replica`);
    try {
      await connection.query(statement);
    } finally {
      await connection.query(sql.unsafe`RESET session_replication_role`);
    }
  });
}

async function cli(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const ctx: CommandContext = {
    stdout: {
      write: (s: string) => {
        stdout += s;
      },
      isTTY: false,
    },
    stderr: {
      write: (s: string) => {
        stderr += s;
      },
      isTTY: false,
    },
    openDatabase: async () => ({ source: createReplayQueries(db.pool), close: async () => {}, pool: db.pool }),
    openFixtures: async (files) => ({ source: await openFixtures(files), close: async () => {} }),
  };
  return { code: await runCli(argv, ctx), stdout: () => stdout, stderr: () => stderr };
}

test.before(async () => {
  db = await createTestDatabase();
  uuids = await writeFleet(db.pool, { now: NOW, devices: 5, days: 10, eventsPerDevice: 30 });
});

test.after.always(async () => {
  await db?.drop();
});

test.serial('an untouched log verifies, and the immutability triggers refuse an ordinary UPDATE', async (t) => {
  const result = await verifyChains(db.pool);
  t.deepEqual(result.breaks, []);
  t.is(result.aggregates, 6);
  await t.throwsAsync(db.pool.query(sql.unsafe`UPDATE events SET data = '{}' WHERE aggregate_version = 3`));
});

test.serial('altered data, a deleted middle event, swapped versions and a deleted last event are each named', async (t) => {
  const altered = await eventAt(uuids[0]!, 10);
  await behindTheTriggers(
    sql.unsafe`UPDATE events SET data = data || '{"tampered": true}'::jsonb WHERE event_id = ${altered.event_id}`,
  );
  const deleted = await eventAt(uuids[1]!, 15);
  await behindTheTriggers(sql.unsafe`DELETE FROM events WHERE event_id = ${deleted.event_id}`);
  const [five, six] = [await eventAt(uuids[2]!, 5), await eventAt(uuids[2]!, 6)];
  await behindTheTriggers(
    sql.unsafe`UPDATE events SET aggregate_version = CASE aggregate_version WHEN 5 THEN 6 ELSE 5 END
    WHERE event_id IN (${five.event_id}, ${six.event_id})`,
  );
  const last = await db.pool.one(sql.type(eventRow)`SELECT event_id, aggregate_version, "timestamp" FROM events
    WHERE aggregate_id = ${uuids[3]!} ORDER BY aggregate_version DESC LIMIT 1`);
  await behindTheTriggers(sql.unsafe`DELETE FROM events WHERE event_id = ${last.event_id}`);

  const { breaks } = await verifyChains(db.pool);
  const of = (uuid: string) => breaks.find((b) => b.aggregate_id === uuid);
  t.is(breaks.length, 4);
  t.like(of(uuids[0]!), { event_id: altered.event_id, version: 10, reason: 'altered' });
  t.like(of(uuids[1]!), { version: 16, reason: 'gap' });
  t.regex(of(uuids[1]!)!.message, /version 15 is missing/);
  t.like(of(uuids[2]!), { event_id: six.event_id, version: 5, reason: 'reordered' });
  t.regex(of(uuids[2]!)!.message, /written as version 6/);
  t.like(of(uuids[3]!), { reason: 'head_mismatch' });
  t.regex(
    of(uuids[3]!)!.message,
    new RegExp(`versions ${last.aggregate_version}\\.\\.${last.aggregate_version} are missing at the end`),
  );
  t.is(of(uuids[4]!), undefined);

  const result = await cli(['verify']);
  t.is(result.code, 1);
  t.true(result.stdout().includes(altered.event_id));
  t.regex(result.stdout(), /4 broken chain\(s\)/);
  const json = await cli(['verify', '--json', '--aggregate', uuids[0]!]);
  t.is(json.code, 1);
  t.like(JSON.parse(json.stdout()), {
    ok: false,
    aggregates: 1,
    breaks: [{ event_id: altered.event_id, reason: 'altered' }],
  });
  const clean = await cli(['verify', '--aggregate', uuids[4]!]);
  t.is(clean.code, 0, clean.stdout());
});

test.serial('--since checks only later events, chaining from the stored hash before them', async (t) => {
  const altered = await eventAt(uuids[0]!, 10);
  const later = (await eventAt(uuids[0]!, 20)).timestamp;
  const result = await verifyChains(db.pool, { aggregate: uuids[0]!, since: later });
  t.deepEqual(result.breaks, []);
  const total = (await verifyChains(db.pool, { aggregate: uuids[0]! })).events;
  t.true(result.events > 0 && result.events < total, `${result.events} of ${total}`);
  const earlier = await verifyChains(db.pool, {
    aggregate: uuids[0]!,
    since: new Date(Date.parse(altered.timestamp) - DAY).toISOString(),
  });
  t.like(earlier.breaks[0], { event_id: altered.event_id, reason: 'altered' });
});

test.serial('retention refuses to drop partitions whose chains are broken', async (t) => {
  const before = await listPartitions(db.pool);
  const later = () => new Date(Date.parse(NOW) + 85 * DAY);
  await t.throwsAsync(runRetention(db.pool, { retentionDays: 90, clock: later }), { instanceOf: RetentionError });
  t.deepEqual(await listPartitions(db.pool), before);
});
