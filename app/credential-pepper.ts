// The pepper credential hashes are keyed with (issue #16, finding 8; infra/devices/credentials.ts):
// CREDENTIAL_PEPPER when set, else DATA_DIR/credential-pepper, generated on first start (32
// random bytes, mode 0600, created without following a symlink and never replaced, so the
// service and `npm run admin` started at once agree on one). It never enters the database.
// Losing it makes every stored credential unusable: a database that already holds peppered
// hashes and a pepper file just generated means DATA_DIR was not kept, and the start stops
// with that said rather than refusing every device.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { MIN_PEPPER_LENGTH } from '../infra/devices/credentials.ts';
import type { Config } from './config.ts';

/** The pepper, where it came from, and whether this call generated it. */
export type CredentialPepper = { pepper: string; source: string; created: boolean };

const FILE = 'credential-pepper';

async function readPepperFile(file: string): Promise<string> {
  const info = await lstat(file);
  if (!info.isFile()) throw new Error(`${file} is not a regular file (a symlink is not followed); remove it`);
  if ((info.mode & 0o077) !== 0) {
    throw new Error(`${file} may be read by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  if (typeof process.getuid === 'function' && info.uid !== process.getuid()) {
    throw new Error(`${file} belongs to another user (uid ${info.uid}); it must be this process's own`);
  }
  const pepper = (await readFile(file, 'utf8')).trim();
  if (pepper.length < MIN_PEPPER_LENGTH) {
    throw new Error(`${file} holds a pepper shorter than ${MIN_PEPPER_LENGTH} characters`);
  }
  return pepper;
}

/** CREDENTIAL_PEPPER, else the pepper file in DATA_DIR (generated when absent). */
export async function loadCredentialPepper(
  config: Pick<Config, 'CREDENTIAL_PEPPER' | 'DATA_DIR'>,
): Promise<CredentialPepper> {
  if (config.CREDENTIAL_PEPPER !== undefined) {
    return { pepper: config.CREDENTIAL_PEPPER, source: 'CREDENTIAL_PEPPER', created: false };
  }
  await mkdir(config.DATA_DIR, { recursive: true, mode: 0o700 });
  const file = path.resolve(config.DATA_DIR, FILE);
  try {
    return { pepper: await readPepperFile(file), source: file, created: false };
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
  }
  // written whole to a private temporary file, then linked to its name: link never replaces
  // what is there, so of two processes generating at once one wins and both read its pepper
  const temporary = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  const handle = await open(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  let created = true;
  try {
    await handle.writeFile(`${randomBytes(32).toString('base64url')}\n`);
    await handle.chmod(0o600);
    await handle.sync();
    await handle.close();
    await link(temporary, file).catch((error: { code?: unknown }) => {
      if (error.code !== 'EEXIST') throw error;
      created = false;
    });
  } finally {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
  }
  return { pepper: await readPepperFile(file), source: file, created };
}

const countRow = z.object({ count: z.number() });

/**
 * Throws when the pepper was generated just now but the database already holds hashes made
 * with a pepper: those were made with another one (DATA_DIR lost or not shared), and no
 * stored credential would authenticate.
 */
export async function assertPepperFitsDatabase(pool: DatabasePool, pepper: CredentialPepper): Promise<void> {
  if (!pepper.created) return;
  const peppered = await pool.oneFirst(sql.type(countRow)`
    SELECT ((SELECT count(*) FROM admin_tokens WHERE hash_scheme = 'hmac-sha256')
          + (SELECT count(*) FROM device_credentials WHERE hash_scheme = 'hmac-sha256')
          + (SELECT count(*) FROM provisioning_keys WHERE hash_scheme = 'hmac-sha256'))::int AS count`);
  if (peppered > 0) {
    await rm(pepper.source, { force: true });
    throw new Error(
      `the database holds ${peppered} credential hash(es) made with a pepper, but ${pepper.source} did not exist: ` +
        'restore that file from the DATA_DIR the service ran with, or set CREDENTIAL_PEPPER to its content ' +
        '(a new pepper would make every device key, provisioning key and admin token unusable)',
    );
  }
}
