// The key secret values are hashed with (README "Secrets", docs/OPERATIONS.md "The secrets
// key"): SECRETS_KEY when set, else DATA_DIR/secrets-key, generated on first use (32 random
// bytes as hex, mode 0600) like the bootstrap admin token. Never in the database: whoever
// reads a dump must not be able to test guesses against the markers in it.
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createSecretHasher, MIN_SECRETS_KEY_BYTES, type SecretHasher } from '../infra/secrets/hasher.ts';

/** The key file's name in DATA_DIR. */
export const SECRETS_KEY_FILE = 'secrets-key';

async function readKeyFile(file: string): Promise<Buffer> {
  const text = (await readFile(file, 'utf8')).trim();
  const key = /^([0-9a-f]{2})+$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.alloc(0);
  if (key.length < MIN_SECRETS_KEY_BYTES) {
    throw new Error(
      `${file}: not a secrets key (${MIN_SECRETS_KEY_BYTES} or more bytes as hex); restore it from backup`,
    );
  }
  return key;
}

/**
 * The secrets key: `configured` (SECRETS_KEY) when given, else the key in `dataDir`, created
 * once. Two processes starting at once end with the same key: the new file is linked into
 * place, which fails when one is there already, and then that one is read.
 */
export async function loadSecretsKey(
  configured: Buffer | undefined,
  dataDir: string,
  log: (line: string) => void = () => undefined,
): Promise<Buffer> {
  if (configured !== undefined) return configured;
  const file = path.resolve(dataDir, SECRETS_KEY_FILE);
  try {
    return await readKeyFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dataDir, { recursive: true });
  const temporary = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  await writeFile(temporary, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(temporary, file);
    log(`created the secrets key in ${file} (back it up with the database; see docs/OPERATIONS.md)`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    await rm(temporary, { force: true });
  }
  return readKeyFile(file);
}

/** The hasher of the configured key (SECRETS_KEY, else DATA_DIR/secrets-key). */
export async function secretHasherFor(
  config: { SECRETS_KEY?: Buffer | undefined; DATA_DIR: string },
  log?: (line: string) => void,
): Promise<SecretHasher> {
  return createSecretHasher(await loadSecretsKey(config.SECRETS_KEY, config.DATA_DIR, log));
}
