// Hardening issue, finding 1: within a stream, "timestamp" never decreases in version order.
// Concurrent writers on one device, through HTTP (the batch writer's group commit, its slow
// path after a conflict, and handleCommand for admin commands), leave a stream whose
// timestamps ascend with its versions, whose hash chain covers the stored timestamps, whose
// stream head records the last one, and whose read model is the fold of what was stored.
import test, { type ExecutionContext } from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { canonicalJson } from '../../infra/event-store/event-hash.ts';
import { verifyChains } from '../../infra/event-store/verify.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

/**
 * The API clock as requests see it: each reads "now" at some point before its append (before
 * its body arrived, its credential was checked, or a lock was granted), so the instants the
 * writers decide with are not in the order their appends commit. Here every read lies 0–45 ms
 * before the real time, in a fixed pattern.
 */
function earlyClock(): () => Date {
  const early = [0, 45, 10, 35, 20, 5, 40, 15, 30, 25];
  let reads = 0;
  return () => new Date(Date.now() - early[reads++ % early.length]!);
}

let app: TestApp;
test.before(async () => {
  app = await startTestApp({ clock: earlyClock() });
});
test.after.always(async () => {
  await app?.close();
});

const eventRow = z.object({ aggregate_version: z.number(), timestamp: z.string() });
const headRow = z.object({ version: z.number(), last_hash: z.string(), last_timestamp: z.string().nullable() });

/** Versions 1..n whose timestamps never decrease, and the head at the last of them. */
async function assertTimeOrdered(t: ExecutionContext, uuid: string): Promise<void> {
  const rows = await app.db.pool.any(sql.type(eventRow)`
    SELECT aggregate_version, "timestamp" FROM events
     WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} ORDER BY aggregate_version`);
  t.deepEqual(rows.map((r) => r.aggregate_version), rows.map((_, i) => i + 1), 'versions are 1..n');
  const backwards = rows.filter((r, i) => i > 0 && Date.parse(r.timestamp) < Date.parse(rows[i - 1]!.timestamp));
  t.deepEqual(
    backwards.map((r) => `v${r.aggregate_version} ${r.timestamp} < ${rows[r.aggregate_version - 2]!.timestamp}`),
    [],
    'no event is stamped before the event of the version before it',
  );
  const head = await app.db.pool.one(sql.type(headRow)`
    SELECT version, last_hash, last_timestamp FROM streams WHERE aggregate_type = 'device' AND aggregate_id = ${uuid}`);
  t.is(head.version, rows.length);
  t.is(head.last_timestamp, rows[rows.length - 1]!.timestamp, "the head records the last event's timestamp");
  // the chain covers the timestamps as stored: verify finds no break
  const verified = await verifyChains(app.db.pool, { aggregate: uuid });
  t.deepEqual(verified.breaks, []);
  // the read model is the fold of the stored events (their stored timestamps included)
  const events = await app.deps.store.readStream('device', uuid);
  const folded = fold(
    events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp })),
    initialState(),
  );
  const state = await app.db.pool.oneFirst(
    sql.type(z.object({ state: z.unknown() }))`SELECT state FROM devices WHERE uuid = ${uuid}`,
  );
  t.is(canonicalJson(state), canonicalJson(JSON.parse(JSON.stringify(folded))), 'read model = fold of the log');
}

test('16 concurrent writers × 15 reports on one device: every report committed, timestamps never go backwards', async (t) => {
  const { key } = await app.createProvisioningKey();
  const device = await app.registerDevice(key);
  const writers = 16;
  const perWriter = 15;
  const statuses: number[] = [];
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; i < perWriter; i += 1) {
      const response = await app.request('PATCH', '/api/v1/device/state', {
        token: device.key,
        body: {
          [device.uuid]: { apps: {}, cpu_usage: w * 100 + i, uptime: w * 1_000 + i, config: { W: `${w}-${i}` } },
        },
      });
      statuses.push(response.status);
    }
  }));
  t.deepEqual([...new Set(statuses)], [200]);
  await assertTimeOrdered(t, device.uuid);
});

test('reports racing with admin target updates and toggles (handleCommand and the batch writer on one stream): timestamps never go backwards', async (t) => {
  const { key } = await app.createProvisioningKey();
  const device = await app.registerDevice(key);
  const reports = Array.from({ length: 8 }, async (_, w) => {
    for (let i = 0; i < 10; i += 1) {
      await app.request('PATCH', '/api/v1/device/state', {
        token: device.key,
        body: { [device.uuid]: { apps: {}, config: { W: `${w}-${i}` } } },
      });
    }
  });
  const targets = Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; i < 5; i += 1) {
      await app.request('POST', `/api/v1/devices/${device.uuid}/target-state`, {
        token: app.adminToken,
        body: { apps: {}, config: { T: `${w}-${i}` } },
      });
    }
  });
  const toggles = Array.from({ length: 2 }, async (_, w) => {
    for (let i = 0; i < 5; i += 1) {
      await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
        token: app.adminToken,
        body: { is_active: (w + i) % 2 === 0, reason: `toggle ${w}-${i}` },
      });
    }
  });
  await Promise.all([...reports, ...targets, ...toggles]);
  // the device ends enabled, so a last report is accepted after the race
  await app.request('PATCH', `/api/v1/devices/${device.uuid}/active`, {
    token: app.adminToken,
    body: { is_active: true },
  });
  await assertTimeOrdered(t, device.uuid);
});
