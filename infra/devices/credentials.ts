// Secrets: generated with a prefix that says what they are, stored only as sha-256
// hashes, compared in constant time. A secret never reaches an event, a log or an error.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { Buffer } from 'node:buffer';

/** Prefixes of the secrets devicetrail issues; device keys are chosen by devices. */
export const ADMIN_TOKEN_PREFIX = 'dta_';
export const PROVISIONING_KEY_PREFIX = 'dtp_';

/** sha-256 of a secret. Secrets here are long random tokens or device keys, looked up by hash. */
export const hashSecret = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/** True when two hashes are equal, in time independent of where they differ. */
export const sameHash = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);

/** A new random secret with a prefix. */
export const generateSecret = (prefix: string): string => `${prefix}${randomBytes(32).toString('base64url')}`;

const adminTokenRow = z.object({ id: z.string(), name: z.string(), token_hash: z.instanceof(Buffer) });
const adminTokenListRow = z.object({
  id: z.string(),
  name: z.string(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
});
const rotatedRow = z.object({ id: z.string(), name: z.string(), lifetime_ms: z.number().nullable() });
const deviceKeyRow = z.object({ uuid: z.string(), key_hash: z.instanceof(Buffer) });
const countRow = z.object({ count: z.number() });

/** A new admin token: its id, name, the secret (visible only now) and when it expires (null: never). */
export type NewAdminToken = { id: string; name: string; token: string; expires_at: string | null };

/** An admin token's secret, stored as its hash; `lifetimeMs` null never expires. */
async function insertAdminToken(
  connection: CommonQueryMethods,
  name: string,
  lifetimeMs: number | null,
): Promise<NewAdminToken> {
  const token = generateSecret(ADMIN_TOKEN_PREFIX);
  const id = randomUUID();
  const expiresAt = lifetimeMs === null
    ? sql.fragment`NULL`
    : sql.fragment`now() + make_interval(secs => ${lifetimeMs / 1000})`;
  const expires = await connection.oneFirst(sql.type(z.object({ expires_at: z.string().nullable() }))`
    INSERT INTO admin_tokens (id, name, token_hash, expires_at)
    VALUES (${id}, ${name}, ${sql.binary(hashSecret(token))}, ${expiresAt})
    RETURNING expires_at`);
  return { id, name, token, expires_at: expires };
}

// An admin token authenticates while neither revoked nor expired (issue #16: tokens may expire);
// the database's clock decides, as it does for revoked_at
const usable = sql.fragment`revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`;

/** Admin token queries. */
export function createAdminTokens(pool: DatabasePool) {
  return {
    /** Creates a token and returns it: the only time it is ever visible. `lifetimeMs` omitted: it never expires. */
    async create(name: string, options: { lifetimeMs?: number } = {}): Promise<NewAdminToken> {
      return insertAdminToken(pool, name, options.lifetimeMs ?? null);
    },
    /** The unrevoked, unexpired token with this secret, or null. */
    async find(token: string): Promise<{ id: string; name: string } | null> {
      const hash = hashSecret(token);
      const row = await pool.maybeOne(sql.type(adminTokenRow)`
        SELECT id, name, token_hash FROM admin_tokens WHERE token_hash = ${sql.binary(hash)} AND ${usable}`);
      return row !== null && sameHash(row.token_hash, hash) ? { id: row.id, name: row.name } : null;
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
      return pool.transaction(async (t) => {
        const rows = await t.any(sql.type(rotatedRow)`
          UPDATE admin_tokens SET revoked_at = now()
           WHERE revoked_at IS NULL AND (id::text = ${idOrName} OR name = ${idOrName})
          RETURNING id, name, (EXTRACT(EPOCH FROM expires_at - created_at) * 1000)::float8 AS lifetime_ms`);
        if (rows.length === 0) return null;
        if (rows.length > 1) {
          throw new Error(`${rows.length} unrevoked tokens are named "${idOrName}": rotate one by its id`);
        }
        const old = rows[0]!;
        return insertAdminToken(t, old.name, options.lifetimeMs ?? old.lifetime_ms);
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
export function createDeviceKeys(pool: DatabasePool) {
  const cache = new Map<string, string>();
  return {
    /** The device whose key this is, or null. */
    async findDevice(key: string): Promise<string | null> {
      const hash = hashSecret(key);
      const cacheKey = hash.toString('base64');
      const cached = cache.get(cacheKey);
      if (cached !== undefined) return cached;
      const row = await pool.maybeOne(sql.type(deviceKeyRow)`
        SELECT uuid, key_hash FROM device_credentials WHERE key_hash = ${sql.binary(hash)}`);
      if (row === null || !sameHash(row.key_hash, hash)) return null;
      if (cache.size >= DEVICE_KEY_CACHE_SIZE) cache.delete(cache.keys().next().value!);
      cache.set(cacheKey, row.uuid);
      return row.uuid;
    },
    /** The stored key hash of a device, or null. */
    async hashOf(connection: CommonQueryMethods, uuid: string): Promise<Buffer | null> {
      const row = await connection.maybeOne(
        sql.type(deviceKeyRow)`SELECT uuid, key_hash FROM device_credentials WHERE uuid = ${uuid}`,
      );
      return row?.key_hash ?? null;
    },
  };
}

/** Stores a device's key hash; false when another device already uses that key. */
export async function insertDeviceKey(connection: CommonQueryMethods, uuid: string, keyHash: Buffer): Promise<boolean> {
  const row = await connection.maybeOne(sql.type(z.object({ uuid: z.string() }))`
    INSERT INTO device_credentials (uuid, key_hash) VALUES (${uuid}, ${sql.binary(keyHash)})
    ON CONFLICT DO NOTHING RETURNING uuid`);
  return row !== null;
}
