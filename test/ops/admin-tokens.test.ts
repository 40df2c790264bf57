// Admin tokens expire and rotate (issue #16, finding 12: the bootstrap token never expired and
// could not be replaced without a gap): a token past expires_at is refused by the admin guard
// like a revoked one (401), rotation revokes the old secret and issues a new one of the same
// name in one transaction, and the operator commands offer both.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { bootstrapAdminToken } from '../../app/bootstrap.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

const run = promisify(execFile);
let app: TestApp;

// the service's pepper, given to the operator command too (CREDENTIAL_PEPPER): a token the
// command creates is hashed as the service hashes it
const PEPPER = randomBytes(32).toString('base64url');

test.before(async () => {
  app = await startTestApp({ credentialPepper: PEPPER });
});
test.after.always(async () => {
  await app?.close();
});

const devices = (token: string) => app.request('GET', '/api/v1/devices', { token });

/** Lets a token's lifetime pass: it was created a lifetime (and a second) ago, so it expired a second ago. */
async function expire(id: string): Promise<void> {
  await app.db.pool.query(sql.unsafe`
    UPDATE admin_tokens SET created_at = created_at - (expires_at - now()) - interval '1 second',
                            expires_at = now() - interval '1 second'
     WHERE id = ${id}`);
}

const lifetimeRow = z.object({ ms: z.number() });

test.serial('a token past its expiry is refused by the admin guard with 401, like a revoked one', async (t) => {
  const created = await app.deps.adminTokens.create('expiring', { lifetimeMs: 30 * 86_400_000 });
  t.not(created.expires_at, null);
  const lifetime = await app.db.pool.oneFirst(sql.type(lifetimeRow)`
    SELECT (EXTRACT(EPOCH FROM expires_at - created_at) * 1000)::float8 AS ms FROM admin_tokens WHERE id = ${created.id}`);
  t.is(lifetime, 30 * 86_400_000);
  t.is((await devices(created.token)).status, 200, 'valid before its expiry');
  await expire(created.id);
  const refused = await devices(created.token);
  t.is(refused.status, 401);
  t.regex(refused.headers.get('www-authenticate') ?? '', /^Bearer/);
  t.is(refused.body.error.code, 'unauthorized');
  t.is(await app.deps.adminTokens.find(created.token), null);
  t.is((await devices(app.adminToken)).status, 200, 'a token without expiry is unaffected');
});

test.serial('rotation: the old secret stops at once, the new one works under the same name and keeps the lifetime', async (t) => {
  const original = await app.deps.adminTokens.create('rotating', { lifetimeMs: 7 * 86_400_000 });
  const rotated = await app.deps.adminTokens.rotate('rotating');
  t.truthy(rotated);
  t.is(rotated!.name, 'rotating');
  t.not(rotated!.token, original.token);
  t.not(rotated!.id, original.id);
  t.is((await devices(original.token)).status, 401, 'the old token is revoked');
  t.is((await devices(rotated!.token)).status, 200);
  const lifetime = await app.db.pool.oneFirst(sql.type(lifetimeRow)`
    SELECT (EXTRACT(EPOCH FROM expires_at - created_at) * 1000)::float8 AS ms FROM admin_tokens WHERE id = ${
    rotated!.id
  }`);
  t.is(lifetime, 7 * 86_400_000, 'the old lifetime, counted from the rotation');
  const shorter = await app.deps.adminTokens.rotate(rotated!.id, { lifetimeMs: 3_600_000 });
  t.is((await devices(rotated!.token)).status, 401);
  t.is((await devices(shorter!.token)).status, 200);
  // an expired token can be rotated: that is how its holder gets a working one again
  await expire(shorter!.id);
  const renewed = await app.deps.adminTokens.rotate('rotating');
  t.is((await devices(renewed!.token)).status, 200);
  t.true(Date.parse(renewed!.expires_at!) > Date.now() + 3_500_000, 'for its hour again');
  t.is(await app.deps.adminTokens.rotate('no-such-token'), null);
  const neverExpiring = await app.deps.adminTokens.create('forever');
  t.is((await app.deps.adminTokens.rotate('forever'))!.expires_at, null, 'a token that never expired still does not');
  t.is((await devices(neverExpiring.token)).status, 401);
});

test.serial('the bootstrap token is created again only when no token authenticates (all revoked or expired)', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-tokens-'));
  t.is(await bootstrapAdminToken(app.deps.adminTokens, dir, () => {}), null, 'usable tokens exist');
  await app.db.pool.query(sql.unsafe`UPDATE admin_tokens SET expires_at = now() - interval '1 second'`);
  const token = await bootstrapAdminToken(app.deps.adminTokens, dir, () => {});
  t.truthy(token);
  t.is((await readFile(path.join(dir, 'admin-token'), 'utf8')).trim(), token!);
  t.is((await lstat(path.join(dir, 'admin-token'))).mode & 0o777, 0o600);
  t.is((await devices(token!)).status, 200);
  await app.db.pool.query(sql.unsafe`UPDATE admin_tokens SET expires_at = NULL`);
  t.is(await app.deps.adminTokens.revoke('bootstrap'), 1);
});

test.serial('npm run admin: create-token --expires-in, list-tokens shows the expiry, rotate-token rewrites the saved bootstrap token', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-admin-cli-'));
  const admin = (...argv: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'app/cli/admin.ts', ...argv], {
      env: { ...process.env, DATABASE_URL: app.db.url, DATA_DIR: dataDir, CREDENTIAL_PEPPER: PEPPER },
      encoding: 'utf8',
      timeout: 60_000,
    });
  const created = await admin('create-token', '--name', 'ci', '--expires-in', '30d');
  const token = created.stdout.trim();
  t.regex(token, /^dta_/);
  t.regex(created.stderr, /created admin token "ci" \(id [0-9a-f-]+; it expires at \d{4}-/);
  t.is((await devices(token)).status, 200);
  const listed = await admin('list-tokens');
  t.regex(listed.stdout, /ci\s+created \S+\s+expires \S+/);
  t.false(listed.stdout.includes(token), 'never the secret');
  const bad = await admin('create-token', '--name', 'x', '--expires-in', 'soon').catch((e) => e);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--expires-in: must be a duration/);

  // the bootstrap token as the service saved it, then rotated with an expiry
  const bootstrap = await app.deps.adminTokens.create('bootstrap');
  const saved = path.join(dataDir, 'admin-token');
  await writeFile(saved, `${bootstrap.token}\n`, { mode: 0o600 });
  const rotated = await admin('rotate-token', 'bootstrap', '--expires-in', '90d');
  const fresh = rotated.stdout.trim();
  t.regex(fresh, /^dta_/);
  t.regex(rotated.stderr, /rotated admin token "bootstrap".*it expires at .*saved to /s);
  t.is((await readFile(saved, 'utf8')).trim(), fresh, 'the saved copy is the new token');
  t.is((await lstat(saved)).mode & 0o777, 0o600);
  t.is((await devices(bootstrap.token)).status, 401);
  t.is((await devices(fresh)).status, 200);
  const unknown = await admin('rotate-token', 'nobody').catch((e) => e);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no unrevoked token has the id or name "nobody"/);
});
