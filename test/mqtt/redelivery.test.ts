// Reports sent again (a PUBACK lost to a crash, a reconnection) are recognised by their
// identity (payload hash and packet id) and append nothing twice, also across a restart of
// the handler (its memory gone, the log remembers); the order of one device's reports holds.
import test from 'ava';
import { Buffer } from 'node:buffer';
import { createReportHandler, type ReportVerdict } from '../../app/mqtt/report-handler.ts';
import { stateReportsFor } from '../../app/state-reports.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { agentReport } from './mqtt-app.ts';

let app: TestApp;
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  await app?.close();
});

function handler(published: Record<string, unknown>[] = []) {
  return createReportHandler({
    pool: app.db.pool,
    reports: stateReportsFor(app.db.pool, app.deps.store, app.deps.secrets),
    clock: () => new Date(),
    rateLimit: null,
    maxPayloadBytes: 64 * 1024,
    publishRejected: (_uuid, body) => {
      published.push(body);
      return Promise.resolve();
    },
    logError: () => undefined,
  });
}

async function device(): Promise<string> {
  const { key } = await app.createProvisioningKey({ fleet_id: 'f' });
  const { uuid, response } = await app.registerDevice(key);
  if (response.status !== 201) throw new Error(response.text);
  return uuid;
}

const packet = (payload: string, messageId: number) => ({
  payload: Buffer.from(payload),
  messageId,
  qos: 1 as const,
  dup: false,
});
const reportEvents = async (uuid: string) =>
  (await app.request('GET', `/api/v1/devices/${uuid}/events?type=current_state.updated`, { token: app.adminToken }))
    .body.events as { data: { system: Record<string, unknown> }; metadata: Record<string, unknown> }[];

test('a report sent again after a restart is acknowledged without being applied again', async (t) => {
  const uuid = await device();
  const sender = { uuid, remoteAddress: '127.0.0.1' };
  const first = handler();
  const v1 = await first.handle(sender, packet(agentReport(uuid, { os_version: 'v1' }), 7));
  t.is(v1.result, 'accepted');
  t.is((v1 as Extract<ReportVerdict, { result: 'accepted' }>).outcome.events_written > 0, true);
  const v2 = await first.handle(sender, packet(agentReport(uuid, { os_version: 'v2' }), 8));
  t.is(v2.result, 'accepted');

  // a new process: nothing in memory; the device resends its last, unacknowledged, message
  const restarted = handler();
  t.deepEqual(await restarted.handle(sender, packet(agentReport(uuid, { os_version: 'v2' }), 8)), {
    result: 'duplicate',
  });
  // and in the same process, a resend of an earlier one
  t.deepEqual(await first.handle(sender, packet(agentReport(uuid, { os_version: 'v1' }), 7)), { result: 'duplicate' });
  const events = await reportEvents(uuid);
  t.deepEqual(events.map((e) => e.data.system['os_version']), ['v1', 'v2']);
  t.true(events.every((e) => /^mqtt:[0-9a-f]{24}:(7|8)$/.test(String(e.metadata['request_id']))));

  // the same content under another packet id is a new report (it changes nothing: no event)
  const same = await restarted.handle(sender, packet(agentReport(uuid, { os_version: 'v2' }), 9));
  t.is(same.result, 'accepted');
  const v3 = await restarted.handle(sender, packet(agentReport(uuid, { os_version: 'v3' }), 10));
  t.is(v3.result, 'accepted');
  t.deepEqual((await reportEvents(uuid)).map((e) => e.data.system['os_version']), ['v1', 'v2', 'v3']);
});

test("one device's reports are applied one at a time, in the order they arrived", async (t) => {
  const uuid = await device();
  const sender = { uuid, remoteAddress: null };
  const h = handler();
  const verdicts = await Promise.all(
    Array.from({ length: 20 }, (_, i) => h.handle(sender, packet(agentReport(uuid, { os_version: `v${i}` }), i + 1))),
  );
  t.true(verdicts.every((v) => v.result === 'accepted'));
  t.deepEqual(
    (await reportEvents(uuid)).map((e) => e.data.system['os_version']),
    Array.from({ length: 20 }, (_, i) => `v${i}`),
  );
});

test('over the rate limit a report is refused with the time to wait, and nothing is written', async (t) => {
  const uuid = await device();
  const published: Record<string, unknown>[] = [];
  const h = createReportHandler({
    pool: app.db.pool,
    reports: stateReportsFor(app.db.pool, app.deps.store, app.deps.secrets),
    clock: () => new Date(),
    rateLimit: { limit: 2, windowMs: 60_000 },
    maxPayloadBytes: 1024,
    publishRejected: (_uuid, body) => {
      published.push(body);
      return Promise.resolve();
    },
    logError: () => undefined,
  });
  const sender = { uuid, remoteAddress: null };
  t.is((await h.handle(sender, packet(agentReport(uuid, { os_version: 'a' }), 1))).result, 'accepted');
  t.is((await h.handle(sender, packet(agentReport(uuid, { os_version: 'b' }), 2))).result, 'accepted');
  const limited = await h.handle(sender, packet(agentReport(uuid, { os_version: 'c' }), 3));
  t.like(limited, { result: 'rejected', code: 'rate_limited' });
  t.like(published[0], { code: 'rate_limited', details: { retry_after_s: 30 } });
  const big = await h.handle(sender, packet(agentReport(uuid, { os_version: 'x'.repeat(2000) }), 4));
  t.like(big, { result: 'rejected', code: 'rate_limited' });
  t.deepEqual((await reportEvents(uuid)).map((e) => e.data.system['os_version']), ['a', 'b']);
});

test('a payload over the size limit is refused', async (t) => {
  const uuid = await device();
  const h = createReportHandler({
    pool: app.db.pool,
    reports: stateReportsFor(app.db.pool, app.deps.store, app.deps.secrets),
    clock: () => new Date(),
    rateLimit: null,
    maxPayloadBytes: 1024,
    publishRejected: () => Promise.resolve(),
    logError: () => undefined,
  });
  const verdict = await h.handle(
    { uuid, remoteAddress: null },
    packet(agentReport(uuid, { os_version: 'x'.repeat(2000) }), 1),
  );
  t.like(verdict, { result: 'rejected', code: 'payload_too_large' });
});
