// The secrets key (README "Secrets"): SECRETS_KEY validated and preferred; else generated once
// in DATA_DIR (0600), the same for processes starting together, never printed.
import { Buffer } from 'node:buffer';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig } from '../../app/config.ts';
import { loadSecretsKey, SECRETS_KEY_FILE } from '../../app/secrets-key.ts';
import { sql } from 'slonik';
import { z } from 'zod';
import { otherKeysWarning, recordSecretsKey, watchSecretsKey } from '../../infra/secrets/key-registry.ts';
import { createSecretHasher } from '../../infra/secrets/hasher.ts';
import { createTestDatabase } from '../helpers/database.ts';

test('SECRETS_KEY: 32+ bytes as hex or base64; anything else names the variable, never the value', (t) => {
  const hex = 'ab'.repeat(32);
  t.deepEqual(loadConfig({ SECRETS_KEY: hex }).SECRETS_KEY, Buffer.from(hex, 'hex'));
  const base64 = Buffer.alloc(48, 3).toString('base64');
  t.deepEqual(loadConfig({ SECRETS_KEY: base64 }).SECRETS_KEY, Buffer.alloc(48, 3));
  t.is(loadConfig({}).SECRETS_KEY, undefined);
  for (const bad of ['too-short-key-value', 'ab'.repeat(31), 'not base64 at all!!'.repeat(4)]) {
    const error = t.throws(() => loadConfig({ SECRETS_KEY: bad }), { instanceOf: ConfigError });
    t.regex(error!.message, /SECRETS_KEY: must be at least 32 bytes/);
    t.false(error!.message.includes(bad), 'the value is not echoed');
  }
});

test('without SECRETS_KEY a key is generated once in DATA_DIR, mode 0600, and read back after', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dt-key-'));
  const lines: string[] = [];
  const [a, b] = await Promise.all([
    loadSecretsKey(undefined, dir, (l) => lines.push(l)),
    loadSecretsKey(undefined, dir),
  ]);
  t.is(a.length, 32);
  t.deepEqual(a, b, 'two processes starting at once get the same key');
  const file = path.join(dir, SECRETS_KEY_FILE);
  t.is((await stat(file)).mode & 0o777, 0o600);
  t.is((await readFile(file, 'utf8')).trim(), a.toString('hex'));
  t.deepEqual(await loadSecretsKey(undefined, dir), a, 'kept');
  t.true(lines.every((l) => !l.includes(a.toString('hex'))), 'never printed');
  const configured = Buffer.alloc(32, 9);
  t.deepEqual(await loadSecretsKey(configured, dir), configured, 'SECRETS_KEY wins');
  await writeFile(file, 'garbage\n');
  await t.throwsAsync(() => loadSecretsKey(undefined, dir), { message: /not a secrets key.*restore it from backup/ });
});

test('instances that do not share one key are told: each records its key id and warns of another recorded within the hour', async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const t0 = new Date('2026-12-06T10:00:00Z');
  const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);
  const a = createSecretHasher(Buffer.alloc(32, 1)).keyId;
  const b = createSecretHasher(Buffer.alloc(32, 2)).keyId;
  t.not(a, b);

  t.deepEqual(await recordSecretsKey(db.pool, a, at(0)), [], 'the first instance is alone');
  t.deepEqual(await recordSecretsKey(db.pool, a, at(1)), [], 'its own key again is no other');
  const others = await recordSecretsKey(db.pool, b, at(2));
  t.deepEqual(others.map((o) => o.key_id), [a]);
  const warning = otherKeysWarning(b, others)!;
  t.regex(
    warning,
    new RegExp(
      `another secrets key wrote to this database within the last hour: ${a} \\(last recorded 2026-12-06T10:01:00.000Z\\); this instance's is ${b}`,
    ),
  );
  t.regex(warning, /share one SECRETS_KEY/);
  t.deepEqual((await recordSecretsKey(db.pool, a, at(3))).map((o) => o.key_id), [b], 'and the first sees the second');
  // a key last recorded more than an hour ago (rotated away, or an instance long stopped) is not in use
  t.deepEqual(await recordSecretsKey(db.pool, b, at(3 + 61)), []);
  t.is(otherKeysWarning(b, []), null);
  // what is stored: ids and times, never the key
  const rows = await db.pool.any(
    sql.type(z.object({ key_id: z.string(), first_seen_at: z.string(), last_seen_at: z.string() }))`
    SELECT key_id, first_seen_at, last_seen_at FROM secrets_keys ORDER BY key_id`,
  );
  t.deepEqual(rows.map((r) => r.key_id).sort(), [a, b].sort());
  t.is(rows.find((r) => r.key_id === a)!.last_seen_at, at(3).toISOString());
  await t.throwsAsync(() => recordSecretsKey(db.pool, 'not-an-id', at(4)), undefined, 'the table takes key ids only');

  // the watcher of a running instance: a warning at start, then at each refresh
  const warnings: string[] = [];
  const errors: unknown[] = [];
  let now = at(70);
  await recordSecretsKey(db.pool, a, now);
  const watch = watchSecretsKey(db.pool, b, {
    warn: (m) => warnings.push(m),
    onError: (_m, e) => errors.push(e),
    clock: () => now,
    intervalMs: 50,
  });
  t.teardown(() => watch.stop());
  await watch.ready;
  t.is(warnings.length, 1);
  t.regex(warnings[0]!, new RegExp(a));
  now = at(70 + 120); // a's instance stopped two hours ago
  const seen = warnings.length;
  await new Promise((resolve) => setTimeout(resolve, 300));
  watch.stop();
  t.is(warnings.length, seen, 'no warning once the other key is no longer recorded');
  t.deepEqual(errors, []);
});
