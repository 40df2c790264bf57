// Which status a credential that no longer works gets, and that the docs say the same (issue
// #16, finding 12: docs/GUARANTEES.md promised 401 for revoked keys while the service answers
// 403). DESIGN's error table decides: 401 for missing or unknown credentials, 403 for "valid
// credentials that may not do this (… revoked or expired key)". A revoked, expired or used-up
// provisioning key is still known (its fleet, its history), so registering with it is a 403
// naming why; an admin token that is revoked or past its expiry identifies nobody: 401.
import { readFile } from 'node:fs/promises';
import test from 'ava';
import { sql } from 'slonik';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
let now = new Date('2026-11-01T12:00:00.000Z');

test.before(async () => {
  app = await startTestApp({ clock: () => now });
});
test.after.always(async () => {
  await app?.close();
});

test.serial('revoked, expired and used-up provisioning keys: registering is a 403 naming why, writing nothing', async (t) => {
  const revoked = await app.createProvisioningKey({ fleet_id: 'f' });
  t.is(
    (await app.request('DELETE', `/api/v1/provisioning-keys/${revoked.id}`, { token: app.adminToken })).status,
    200,
  );
  const expiring = await app.createProvisioningKey({ fleet_id: 'f', expires_at: '2026-11-01T13:00:00Z' });
  const usedUp = await app.createProvisioningKey({ fleet_id: 'f', max_devices: 1 });
  t.is((await app.registerDevice(usedUp.key)).response.status, 201);
  now = new Date('2026-11-01T14:00:00.000Z');
  for (
    const [key, code] of [
      [revoked.key, 'provisioning_key_revoked'],
      [expiring.key, 'provisioning_key_expired'],
      [usedUp.key, 'provisioning_key_used_up'],
    ] as const
  ) {
    const before = await app.eventCount();
    const { response } = await app.registerDevice(key);
    t.is(response.status, 403, `${code}: ${response.text}`);
    t.is(response.body.error.code, code);
    t.is(response.headers.get('www-authenticate'), null, 'not a challenge to authenticate again');
    t.is(await app.eventCount(), before, 'nothing written');
  }
});

test.serial('revoked and expired admin tokens: 401 with a Bearer challenge', async (t) => {
  const revoked = await app.deps.adminTokens.create('revoked');
  await app.deps.adminTokens.revoke(revoked.id);
  const expired = await app.deps.adminTokens.create('expired', { lifetimeMs: 60_000 });
  await app.db.pool.query(
    sql.unsafe`UPDATE admin_tokens SET expires_at = now() - interval '1 second' WHERE id = ${expired.id}`,
  );
  for (const token of [revoked.token, expired.token]) {
    const response = await app.request('GET', '/api/v1/devices', { token });
    t.is(response.status, 401);
    t.regex(response.headers.get('www-authenticate') ?? '', /^Bearer/);
  }
});

test('docs/GUARANTEES.md and the README state these statuses, not 401 for revoked keys', async (t) => {
  const guarantees = await readFile('docs/GUARANTEES.md', 'utf8');
  const section = guarantees.slice(guarantees.indexOf('## 4. Isolation'), guarantees.indexOf('## 5.'));
  t.false(/unknown or revoked credentials are a 401/i.test(section), 'the old, wrong promise is gone');
  t.regex(section, /revoked,\s+expired\s+or\s+used-up\s+provisioning\s+key[^.]*403/);
  t.regex(section, /provisioning_key_revoked/);
  t.regex(section, /401[^.]*admin\s+tokens\s+that\s+are\s+revoked\s+or\s+past\s+their\s+expiry/);
  const readme = await readFile('README.md', 'utf8');
  t.regex(readme, /Revoked\/expired\/used-up key: 403/);
});
