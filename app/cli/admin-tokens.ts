// Operator commands for admin tokens (registered in app/cli/admin.ts):
//   npm run admin -- create-token --name <name> [--expires-in 30d]
//   npm run admin -- list-tokens
//   npm run admin -- revoke-token <id|name>
//   npm run admin -- rotate-token <id|name> [--expires-in 30d]
// A token past its expiry authenticates nobody (401, like a revoked one). Rotating replaces a
// token by a new one of the same name in one transaction; rotating "bootstrap" also rewrites
// DATA_DIR/admin-token, where the service saved it on first start.
import { access } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DatabasePool } from 'slonik';
import { createAdminTokens, createCredentialHasher, type CredentialHasher } from '../../infra/devices/credentials.ts';
import { assertPepperFitsDatabase, loadCredentialPepper } from '../credential-pepper.ts';
import { type Config, parseDuration } from '../config.ts';
import { writePrivateFile } from './private-file.ts';

type Command = {
  summary: string;
  usage: string;
  run: (
    db: { pool: DatabasePool; config: Pick<Config, 'DATA_DIR' | 'CREDENTIAL_PEPPER'> },
    argv: string[],
  ) => Promise<number>;
};

/**
 * The admin tokens of the service's database. Commands that store a token hash it with the
 * service's pepper (app/credential-pepper.ts); listing and revoking hash nothing and need none.
 */
async function adminTokensOf(
  db: { pool: DatabasePool; config: Pick<Config, 'DATA_DIR' | 'CREDENTIAL_PEPPER'> },
  hashes = true,
) {
  if (!hashes) return createAdminTokens(db.pool, NO_HASHING);
  const pepper = await loadCredentialPepper(db.config);
  await assertPepperFitsDatabase(db.pool, pepper);
  return createAdminTokens(db.pool, createCredentialHasher(pepper.pepper));
}

const noPepper = (): never => {
  throw new Error('this command hashes no credential and loaded no pepper');
};
const NO_HASHING: CredentialHasher = { hash: noPepper, legacy: noPepper, matches: noPepper };

const MIN_LIFETIME_MS = 60_000;

/** `--expires-in 30d` → milliseconds; undefined when absent; a message when invalid. */
function lifetimeOf(text: string | undefined): number | undefined | string {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === null) return `--expires-in: must be a duration like 12h, 30d or 90d (units s, m, h, d), got "${text}"`;
  if (ms < MIN_LIFETIME_MS) return `--expires-in: must be at least 1m, got "${text}"`;
  return ms;
}

const expiry = (expiresAt: string | null) => (expiresAt === null ? 'it never expires' : `it expires at ${expiresAt}`);

/** create-token --name <name> [--expires-in <duration>] */
export const createTokenCommand: Command = {
  summary: 'create an admin token and print it (shown once); --expires-in 30d makes it expire',
  usage: 'create-token --name <name> [--expires-in <duration>]',
  async run(db, argv) {
    const { values } = parseArgs({
      args: argv,
      options: { name: { type: 'string' }, 'expires-in': { type: 'string' } },
    });
    if (values.name === undefined || values.name.trim() === '') {
      console.error('create-token: --name <name> is required');
      return 2;
    }
    const lifetimeMs = lifetimeOf(values['expires-in']);
    if (typeof lifetimeMs === 'string') {
      console.error(`create-token: ${lifetimeMs}`);
      return 2;
    }
    const created = await (await adminTokensOf(db)).create(
      values.name.trim(),
      lifetimeMs === undefined ? {} : { lifetimeMs },
    );
    console.error(
      `created admin token "${created.name}" (id ${created.id}; ${expiry(created.expires_at)}); it is shown only now:`,
    );
    console.log(created.token);
    return 0;
  },
};

/** list-tokens */
export const listTokensCommand: Command = {
  summary: 'list admin tokens (names, ids, expiry; never the secrets)',
  usage: 'list-tokens',
  async run(db) {
    const now = Date.now();
    for (const t of await (await adminTokensOf(db, false)).list()) {
      const expires = t.expires_at === null
        ? ''
        : Date.parse(t.expires_at) <= now
        ? `  EXPIRED ${t.expires_at}`
        : `  expires ${t.expires_at}`;
      console.log(
        `${t.id}  ${t.name.padEnd(20)}  created ${t.created_at}${expires}${
          t.revoked_at ? `  REVOKED ${t.revoked_at}` : ''
        }`,
      );
    }
    return 0;
  },
};

/** revoke-token <id|name> */
export const revokeTokenCommand: Command = {
  summary: 'revoke admin tokens by id or name',
  usage: 'revoke-token <id|name>',
  async run(db, argv) {
    const which = argv[0];
    if (which === undefined) {
      console.error('revoke-token: give the token id or name');
      return 2;
    }
    const n = await (await adminTokensOf(db, false)).revoke(which);
    console.log(`revoked ${n} token(s)`);
    return n > 0 ? 0 : 1;
  },
};

/** rotate-token <id|name> [--expires-in <duration>] */
export const rotateTokenCommand: Command = {
  summary: 'replace an admin token by a new one of the same name (printed once); the old one stops working at once',
  usage: 'rotate-token <id|name> [--expires-in <duration>]',
  async run(db, argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { 'expires-in': { type: 'string' } },
      allowPositionals: true,
    });
    const which = positionals[0];
    if (which === undefined || positionals.length > 1) {
      console.error('rotate-token: give one token id or name');
      return 2;
    }
    const lifetimeMs = lifetimeOf(values['expires-in']);
    if (typeof lifetimeMs === 'string') {
      console.error(`rotate-token: ${lifetimeMs}`);
      return 2;
    }
    let rotated;
    try {
      rotated = await (await adminTokensOf(db)).rotate(which, lifetimeMs === undefined ? {} : { lifetimeMs });
    } catch (error) {
      console.error(`rotate-token: ${(error as Error).message}`);
      return 1;
    }
    if (rotated === null) {
      console.error(`rotate-token: no unrevoked token has the id or name "${which}"`);
      return 1;
    }
    // the service saved the bootstrap token here on first start: keep that copy working
    const saved = path.resolve(db.config.DATA_DIR, 'admin-token');
    const rewrite = rotated.name === 'bootstrap' && await access(saved).then(() => true, () => false);
    if (rewrite) await writePrivateFile(saved, `${rotated.token}\n`);
    console.error(
      `rotated admin token "${rotated.name}": the old one is revoked; the new one (id ${rotated.id}; ${
        expiry(rotated.expires_at)
      }) is shown only now${rewrite ? ` and saved to ${saved}` : ''}:`,
    );
    console.log(rotated.token);
    return 0;
  },
};
