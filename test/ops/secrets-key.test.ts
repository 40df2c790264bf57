// The secrets key (README "Secrets"): SECRETS_KEY validated and preferred; else generated once
// in DATA_DIR (0600), the same for processes starting together, never printed.
import { Buffer } from 'node:buffer';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig } from '../../app/config.ts';
import { loadSecretsKey, SECRETS_KEY_FILE } from '../../app/secrets-key.ts';

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
