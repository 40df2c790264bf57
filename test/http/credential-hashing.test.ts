// Stored credential hashes are peppered (issue #16, finding 8): HMAC-SHA-256 keyed with a
// server-side pepper that never enters the database; a row stored before migration 017 (plain
// sha-256) still authenticates and is rewritten peppered when it does; the pepper comes from
// CREDENTIAL_PEPPER or a private file in DATA_DIR, generated once and never replaced.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Buffer } from 'node:buffer';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { assertPepperFitsDatabase, loadCredentialPepper } from '../../app/credential-pepper.ts';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import {
  findCredential,
  issueCredential,
  passwordMatches,
  upgradePasswordHash,
} from '../../infra/mqtt/credentials-store.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const PEPPER = randomBytes(32).toString('base64url');
const hmac = (secret: string) => createHmac('sha256', PEPPER).update(secret, 'utf8').digest();
const sha256 = (secret: string) => createHash('sha256').update(secret, 'utf8').digest();

let app: TestApp;
let provisioningKey: { id: string; key: string };

test.before(async () => {
  app = await startTestApp({ credentialPepper: PEPPER });
  provisioningKey = await app.createProvisioningKey({ fleet_id: 'pepper' });
});
test.after.always(async () => {
  await app?.close();
});

const stored = z.object({ hash: z.instanceof(Buffer), scheme: z.string() });

const deviceRow = (uuid: string) =>
  app.db.pool.one(sql.type(stored)`
    SELECT key_hash AS hash, hash_scheme AS scheme FROM device_credentials WHERE uuid = ${uuid}`);

test.serial('every credential is stored as HMAC-SHA-256 with the pepper, never as its plain sha-256', async (t) => {
  const device = await app.registerDevice(provisioningKey.key);
  t.is(device.response.status, 201);
  const rows = [
    { what: 'device key', secret: device.key, row: await deviceRow(device.uuid) },
    {
      what: 'provisioning key',
      secret: provisioningKey.key,
      row: await app.db.pool.one(sql.type(stored)`
        SELECT key_hash AS hash, hash_scheme AS scheme FROM provisioning_keys WHERE id = ${provisioningKey.id}`),
    },
    {
      what: 'admin token',
      secret: app.adminToken,
      row: await app.db.pool.one(sql.type(stored)`
        SELECT token_hash AS hash, hash_scheme AS scheme FROM admin_tokens WHERE name = 'test'`),
    },
  ];
  for (const { what, secret, row } of rows) {
    t.is(row.scheme, 'hmac-sha256', what);
    t.deepEqual(row.hash, hmac(secret), what);
    t.notDeepEqual(row.hash, sha256(secret), what);
  }
  // MQTT passwords likewise
  const issued = (await issueCredential(app.db.pool, app.deps.credentials, device.uuid))!;
  const mqtt = (await findCredential(app.db.pool, issued.username))!;
  t.is(mqtt.hashScheme, 'hmac-sha256');
  t.deepEqual(mqtt.passwordHash, hmac(issued.password));
  t.true(passwordMatches(app.deps.credentials, mqtt, issued.password));
  t.false(passwordMatches(app.deps.credentials, mqtt, `${issued.password}x`));
});

test.serial('the pepper is nowhere in the database', async (t) => {
  const tables = await app.db.pool.anyFirst(sql.type(z.object({ name: z.string() }))`
    SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition`);
  t.true(tables.length > 10);
  const forms = [PEPPER, Buffer.from(PEPPER).toString('hex'), Buffer.from(PEPPER).toString('base64')];
  for (const table of tables) {
    const text = (await app.db.pool.anyFirst(
      sql.type(z.object({ t: z.string() }))`SELECT to_jsonb(x)::text AS t FROM ${sql.identifier([table])} x`,
    )).join('\n');
    for (const form of forms) t.false(text.includes(form), `table ${table}`);
  }
});

test.serial('another pepper authenticates nobody: the hash depends on it', async (t) => {
  const device = await app.registerDevice(provisioningKey.key);
  const other = createDeps(app.db.pool, { credentialPepper: randomBytes(32).toString('base64url') });
  const server = createServer(createApp(other).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const asDevice = await fetch(`${base}/api/v1/device/${device.uuid}/target-state`, {
    headers: { Authorization: `Bearer ${device.key}` },
  });
  t.is(asDevice.status, 401);
  const asAdmin = await fetch(`${base}/api/v1/devices`, { headers: { Authorization: `Bearer ${app.adminToken}` } });
  t.is(asAdmin.status, 401);
});

test.serial('a legacy sha-256 row still authenticates and is rewritten peppered on its first success', async (t) => {
  const device = await app.registerDevice(provisioningKey.key);
  // as stored before migration 017
  await app.db.pool.query(sql.unsafe`
    UPDATE device_credentials SET key_hash = ${sql.binary(sha256(device.key))}, hash_scheme = 'sha256'
     WHERE uuid = ${device.uuid}`);
  const admin = await app.deps.adminTokens.create('legacy-admin');
  await app.db.pool.query(sql.unsafe`
    UPDATE admin_tokens SET token_hash = ${sql.binary(sha256(admin.token))}, hash_scheme = 'sha256'
     WHERE id = ${admin.id}`);
  const pk = await app.createProvisioningKey({ fleet_id: 'legacy' });
  await app.db.pool.query(sql.unsafe`
    UPDATE provisioning_keys SET key_hash = ${sql.binary(sha256(pk.key))}, hash_scheme = 'sha256' WHERE id = ${pk.id}`);

  // a wrong secret is no more accepted than before
  t.is(
    (await app.request('GET', `/api/v1/device/${device.uuid}/target-state`, { token: `${device.key}x` })).status,
    401,
  );
  t.is((await deviceRow(device.uuid)).scheme, 'sha256');

  t.is((await app.request('GET', `/api/v1/device/${device.uuid}/target-state`, { token: device.key })).status, 200);
  t.like(await deviceRow(device.uuid), { scheme: 'hmac-sha256', hash: hmac(device.key) });
  t.is((await app.request('GET', `/api/v1/device/${device.uuid}/target-state`, { token: device.key })).status, 200);

  t.is((await app.request('GET', '/api/v1/devices', { token: admin.token })).status, 200);
  t.like(
    await app.db.pool.one(sql.type(stored)`
      SELECT token_hash AS hash, hash_scheme AS scheme FROM admin_tokens WHERE id = ${admin.id}`),
    { scheme: 'hmac-sha256', hash: hmac(admin.token) },
  );

  t.is((await app.registerDevice(pk.key)).response.status, 201);
  t.like(
    await app.db.pool.one(sql.type(stored)`
      SELECT key_hash AS hash, hash_scheme AS scheme FROM provisioning_keys WHERE id = ${pk.id}`),
    { scheme: 'hmac-sha256', hash: hmac(pk.key) },
  );
});

test.serial('a legacy device key is still taken: another device cannot register with it, its owner can again', async (t) => {
  const device = await app.registerDevice(provisioningKey.key);
  await app.db.pool.query(sql.unsafe`
    UPDATE device_credentials SET key_hash = ${sql.binary(sha256(device.key))}, hash_scheme = 'sha256'
     WHERE uuid = ${device.uuid}`);
  t.is((await app.registerDevice(provisioningKey.key, { deviceApiKey: device.key })).response.status, 409);
  const again = await app.registerDevice(provisioningKey.key, { uuid: device.uuid, deviceApiKey: device.key });
  t.is(again.response.status, 200, again.response.text);
});

test.serial('a legacy MQTT password still matches and is upgraded', async (t) => {
  const device = await app.registerDevice(provisioningKey.key);
  const issued = (await issueCredential(app.db.pool, app.deps.credentials, device.uuid))!;
  await app.db.pool.query(sql.unsafe`
    UPDATE mqtt_credentials SET password_hash = ${sql.binary(sha256(issued.password))}, hash_scheme = 'sha256'
     WHERE uuid = ${device.uuid}`);
  const legacy = (await findCredential(app.db.pool, issued.username))!;
  t.true(passwordMatches(app.deps.credentials, legacy, issued.password));
  t.false(passwordMatches(app.deps.credentials, legacy, 'wrong'));
  await upgradePasswordHash(app.db.pool, app.deps.credentials, legacy, issued.password);
  const upgraded = (await findCredential(app.db.pool, issued.username))!;
  t.is(upgraded.hashScheme, 'hmac-sha256');
  t.deepEqual(upgraded.passwordHash, hmac(issued.password));
  t.true(passwordMatches(app.deps.credentials, upgraded, issued.password));
});

test.serial('the pepper file: generated once (0600), reused, never through a symlink or when others may read it', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-pepper-'));
  const first = await loadCredentialPepper({ DATA_DIR: dir, CREDENTIAL_PEPPER: undefined });
  t.true(first.created);
  t.true(first.pepper.length >= 32);
  const file = path.join(dir, 'credential-pepper');
  t.is((await lstat(file)).mode & 0o777, 0o600);
  t.is((await readFile(file, 'utf8')).trim(), first.pepper);
  const again = await loadCredentialPepper({ DATA_DIR: dir, CREDENTIAL_PEPPER: undefined });
  t.deepEqual(again, { ...first, created: false });
  t.is((await loadCredentialPepper({ DATA_DIR: dir, CREDENTIAL_PEPPER: PEPPER })).pepper, PEPPER, 'the variable wins');

  await chmod(file, 0o644);
  await t.throwsAsync(loadCredentialPepper({ DATA_DIR: dir, CREDENTIAL_PEPPER: undefined }), { message: /chmod 600/ });
  const elsewhere = await mkdtemp(path.join(tmpdir(), 'devicetrail-pepper-link-'));
  await writeFile(path.join(elsewhere, 'target'), `${PEPPER}\n`, { mode: 0o600 });
  await symlink(path.join(elsewhere, 'target'), path.join(elsewhere, 'credential-pepper'));
  await t.throwsAsync(loadCredentialPepper({ DATA_DIR: elsewhere, CREDENTIAL_PEPPER: undefined }), {
    message: /not a regular file/,
  });
});

test.serial('a pepper generated now while the database holds peppered hashes stops the start', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-pepper-lost-'));
  const fresh = await loadCredentialPepper({ DATA_DIR: dir, CREDENTIAL_PEPPER: undefined });
  await t.throwsAsync(assertPepperFitsDatabase(app.db.pool, fresh), { message: /restore that file/ });
  // and the stray file is gone, so the next start does not take it for the right one
  await t.throwsAsync(lstat(fresh.source), { code: 'ENOENT' });
  // a pepper that was already there, or given, is not second-guessed
  await t.notThrowsAsync(assertPepperFitsDatabase(app.db.pool, { ...fresh, created: false }));
});
