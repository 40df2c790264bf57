// Secrets: generated with a prefix that says what they are, stored only as hashes, compared
// in constant time. A secret never reaches an event, a log or an error. The stored hash is
// HMAC-SHA-256 keyed with a server-side pepper (CREDENTIAL_PEPPER, or DATA_DIR/credential-pepper,
// never in the database: a stolen database alone cannot be used to test guesses offline;
// issue #16, finding 8). Rows written before migration 017 hold a plain sha-256 (their
// `hash_scheme` says 'sha256'); they still authenticate, and are rewritten peppered the first
// time they do.
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { Buffer } from 'node:buffer';
import { transaction } from '../postgres/transaction.ts';

/** Prefixes of the secrets devicetrail issues; device keys are chosen by devices. */
export const ADMIN_TOKEN_PREFIX = 'dta_';
export const PROVISIONING_KEY_PREFIX = 'dtp_';

/** sha-256 of a secret: the legacy stored form (before migration 017); never written any more. */
export const legacyHash = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/** How a stored hash was made (the `hash_scheme` column of every credential table, migration 017). */
export type HashScheme = 'sha256' | 'hmac-sha256';

/** The scheme every new or upgraded hash is stored with. */
export const PEPPERED: HashScheme = 'hmac-sha256';

/** The shortest pepper taken (CREDENTIAL_PEPPER is validated to this in app/config.ts). */
export const MIN_PEPPER_LENGTH = 32;

/**
 * Hashes secrets for storage and lookup. `hash` is the peppered form, deterministic so a row
 * can be found by it; `legacy` the plain sha-256 of rows not yet upgraded.
 */
export type CredentialHasher = {
  hash: (secret: string) => Buffer;
  legacy: (secret: string) => Buffer;
  /** Whether `secret` is what `stored` was made from under `scheme`, in constant time. */
  matches: (stored: Buffer, scheme: HashScheme, secret: string) => boolean;
};

/** The hasher for a pepper (at least MIN_PEPPER_LENGTH characters). */
export function createCredentialHasher(pepper: string): CredentialHasher {
  if (pepper.length < MIN_PEPPER_LENGTH) {
    throw new Error(`a credential pepper must be at least ${MIN_PEPPER_LENGTH} characters`);
  }
  const hash = (secret: string): Buffer => createHmac('sha256', pepper).update(secret, 'utf8').digest();
  return {
    hash,
    legacy: legacyHash,
    matches: (stored, scheme, secret) => sameHash(stored, scheme === PEPPERED ? hash(secret) : legacyHash(secret)),
  };
}

/** The two stored forms of one secret: peppered, and legacy (before migration 017). */
export type SecretHashes = { peppered: Buffer; legacy: Buffer };

/**
 * A WHERE condition matching a row that stores `hashes` as its scheme says, on the columns
 * named (e.g. `k.key_hash`, `k.hash_scheme`): one statement finds either form.
 */
export const matchesHashes = (hashColumn: string, schemeColumn: string, hashes: SecretHashes) => {
  const hash = sql.identifier(hashColumn.split('.'));
  const scheme = sql.identifier(schemeColumn.split('.'));
  return sql.fragment`((${hash} = ${sql.binary(hashes.peppered)} AND ${scheme} = 'hmac-sha256')
    OR (${hash} = ${sql.binary(hashes.legacy)} AND ${scheme} = 'sha256'))`;
};

/**
 * Finds a row by its secret, in one statement (`find`, whose WHERE uses matchesHashes and which
 * returns the row's hash and scheme): the peppered hash, or the legacy one of a row still
 * stored that way, which `upgrade` then rewrites peppered (only while it is still legacy, so two
 * concurrent first logins both succeed). The hash found is compared again in constant time.
 */
export async function findByHash<T extends { hash: Buffer; scheme: HashScheme }>(
  hasher: CredentialHasher,
  secret: string,
  find: (hashes: SecretHashes) => Promise<T | null>,
  upgrade: (row: T, peppered: Buffer) => Promise<void>,
): Promise<T | null> {
  const hashes = { peppered: hasher.hash(secret), legacy: hasher.legacy(secret) };
  const row = await find(hashes);
  if (row === null) return null;
  if (row.scheme === PEPPERED) return sameHash(row.hash, hashes.peppered) ? row : null;
  if (!sameHash(row.hash, hashes.legacy)) return null;
  await upgrade(row, hashes.peppered);
  return row;
}

/** True when two hashes are equal, in time independent of where they differ. */
export const sameHash = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);

/** A new random secret with a prefix. */
export const generateSecret = (prefix: string): string => `${prefix}${randomBytes(32).toString('base64url')}`;

const schemeOf = z.enum(['sha256', 'hmac-sha256']);
const adminTokenRow = z.object({ id: z.string(), name: z.string(), hash: z.instanceof(Buffer), scheme: schemeOf });
const adminTokenListRow = z.object({
  id: z.string(),
  name: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
});
const rotatedRow = z.object({ id: z.string(), name: z.string(), lifetime_ms: z.number().nullable() });
const deviceKeyRow = z.object({ uuid: z.string(), hash: z.instanceof(Buffer), scheme: schemeOf });
const storedKeyRow = z.object({ hash: z.instanceof(Buffer), scheme: schemeOf });
const countRow = z.object({ count: z.number() });

/** A new admin token: its id, name, the secret (visible only now) and when it expires (null: never). */
export type NewAdminToken = { id: string; name: string; token: string; expires_at: string | null };

/** An admin token's secret, stored as its hash; `lifetimeMs` null never expires. */
async function insertAdminToken(
  connection: CommonQueryMethods,
  hasher: CredentialHasher,
  name: string,
  lifetimeMs: number | null,
): Promise<NewAdminToken> {
  const token = generateSecret(ADMIN_TOKEN_PREFIX);
  const id = randomUUID();
  const expiresAt = lifetimeMs === null
    ? sql.fragment`NULL`
    : sql.fragment`now() + make_interval(secs => ${lifetimeMs / 1000})`;
  const expires = await connection.oneFirst(sql.type(z.object({ expires_at: z.string().nullable() }))`
    INSERT INTO admin_tokens (id, name, token_hash, hash_scheme, expires_at)
    VALUES (${id}, ${name}, ${sql.binary(hasher.hash(token))}, ${PEPPERED}, ${expiresAt})
    RETURNING expires_at`);
  return { id, name, token, expires_at: expires };
}

// An admin token authenticates while neither revoked nor expired (issue #16: tokens may expire);
// the database's clock decides, as it does for revoked_at
const usable = sql.fragment`revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`;

/** Admin token queries. */
export function createAdminTokens(pool: DatabasePool, hasher: CredentialHasher) {
  return {
    /** Creates a token and returns it: the only time it is ever visible. `lifetimeMs` omitted: it never expires. */
    async create(name: string, options: { lifetimeMs?: number } = {}): Promise<NewAdminToken> {
      return insertAdminToken(pool, hasher, name, options.lifetimeMs ?? null);
    },
    /** The unrevoked, unexpired token with this secret, or null. */
    async find(token: string): Promise<{ id: string; name: string } | null> {
      const row = await findByHash(
        hasher,
        token,
        (hashes) =>
          pool.maybeOne(sql.type(adminTokenRow)`
            SELECT id, name, token_hash AS hash, hash_scheme AS scheme FROM admin_tokens
             WHERE ${matchesHashes('token_hash', 'hash_scheme', hashes)} AND ${usable}
             ORDER BY hash_scheme LIMIT 1`),
        async (old, peppered) => {
          await pool.query(sql.unsafe`
            UPDATE admin_tokens SET token_hash = ${sql.binary(peppered)}, hash_scheme = ${PEPPERED}
             WHERE id = ${old.id} AND hash_scheme = 'sha256'`);
        },
      );
      return row === null ? null : { id: row.id, name: row.name };
    },
    /** Tokens that authenticate now (neither revoked nor expired). */
    async count(): Promise<number> {
      return pool.oneFirst(sql.type(countRow)`SELECT count(*)::int AS count FROM admin_tokens WHERE ${usable}`);
    },
    async list(): Promise<readonly z.infer<typeof adminTokenListRow>[]> {
      return pool.any(sql.type(adminTokenListRow)`
        SELECT id, name, created_at, expires_at, revoked_at FROM admin_tokens ORDER BY created_at`);
    },
    /**
     * Replaces the unrevoked token with this id or name by a new one of the same name, in one
     * transaction: the old one is revoked, the new one (returned, shown once) expires after
     * `lifetimeMs`, or after the old one's lifetime when omitted (never, if the old one never
     * did). Null when no unrevoked token matches; throws when a name matches several.
     */
    async rotate(idOrName: string, options: { lifetimeMs?: number } = {}): Promise<NewAdminToken | null> {
      return transaction(pool, async (t) => {
        const rows = await t.any(sql.type(rotatedRow)`
          UPDATE admin_tokens SET revoked_at = now()
           WHERE revoked_at IS NULL AND (id::text = ${idOrName} OR name = ${idOrName})
          RETURNING id, name, (EXTRACT(EPOCH FROM expires_at - created_at) * 1000)::float8 AS lifetime_ms`);
        if (rows.length === 0) return null;
        if (rows.length > 1) {
          throw new Error(`${rows.length} unrevoked tokens are named "${idOrName}": rotate one by its id`);
        }
        const old = rows[0]!;
        return insertAdminToken(t, hasher, old.name, options.lifetimeMs ?? old.lifetime_ms);
      });
    },
    /** Revokes by id or name; returns how many were revoked. */
    async revoke(idOrName: string): Promise<number> {
      const result = await pool.query(sql.unsafe`
        UPDATE admin_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL AND (id::text = ${idOrName} OR name = ${idOrName})`);
      return result.rowCount;
    },
  };
}

const DEVICE_KEY_CACHE_SIZE = 100_000;

/**
 * Device key queries. Found keys are cached (hash → uuid): a device key never changes
 * owner once registered, and whether the device may act (active, exists) is decided from
 * its state on every call, not from this cache. Unknown keys are not cached.
 */
export function createDeviceKeys(pool: DatabasePool, hasher: CredentialHasher) {
  const cache = new Map<string, string>();
  return {
    /** The device whose key this is, or null. */
    async findDevice(key: string): Promise<string | null> {
      const cacheKey = hasher.hash(key).toString('base64');
      const cached = cache.get(cacheKey);
      if (cached !== undefined) return cached;
      const row = await findByHash(
        hasher,
        key,
        (hashes) =>
          pool.maybeOne(sql.type(deviceKeyRow)`
            SELECT uuid, key_hash AS hash, hash_scheme AS scheme FROM device_credentials
             WHERE ${matchesHashes('key_hash', 'hash_scheme', hashes)}
             ORDER BY hash_scheme LIMIT 1`),
        async (old, peppered) => {
          await pool.query(sql.unsafe`
            UPDATE device_credentials SET key_hash = ${sql.binary(peppered)}, hash_scheme = ${PEPPERED}
             WHERE uuid = ${old.uuid} AND hash_scheme = 'sha256'`);
        },
      );
      if (row === null) return null;
      if (cache.size >= DEVICE_KEY_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      cache.set(cacheKey, row.uuid);
      return row.uuid;
    },
    /** Whether `key` is the key device `uuid` registered with; null when `uuid` has no key (not registered). */
    async isKeyOf(connection: CommonQueryMethods, uuid: string, key: string): Promise<boolean | null> {
      const row = await connection.maybeOne(sql.type(storedKeyRow)`
        SELECT key_hash AS hash, hash_scheme AS scheme FROM device_credentials WHERE uuid = ${uuid}`);
      return row === null ? null : hasher.matches(row.hash, row.scheme, key);
    },
    /** Stores a device's key (peppered); false when another device already uses that key. */
    async insert(connection: CommonQueryMethods, uuid: string, key: string): Promise<boolean> {
      // a key stored before migration 017 is taken too, though its row holds the legacy hash
      const legacy = await connection.maybeOne(sql.type(z.object({ uuid: z.string() }))`
        SELECT uuid FROM device_credentials
         WHERE key_hash = ${sql.binary(hasher.legacy(key))} AND hash_scheme = 'sha256'`);
      if (legacy !== null) return false;
      const row = await connection.maybeOne(sql.type(z.object({ uuid: z.string() }))`
        INSERT INTO device_credentials (uuid, key_hash, hash_scheme)
        VALUES (${uuid}, ${sql.binary(hasher.hash(key))}, ${PEPPERED})
        ON CONFLICT DO NOTHING RETURNING uuid`);
      return row !== null;
    },
  };
}
