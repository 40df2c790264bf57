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
const deviceKeyRow = z.object({ uuid: z.string(), key_hash: z.instanceof(Buffer) });
const countRow = z.object({ count: z.number() });

/** Admin token queries. */
export function createAdminTokens(pool: DatabasePool) {
  return {
    /** Creates a token and returns it: the only time it is ever visible. */
    async create(name: string): Promise<{ id: string; name: string; token: string }> {
      const token = generateSecret(ADMIN_TOKEN_PREFIX);
      const id = randomUUID();
      await pool.query(
        sql.unsafe`INSERT INTO admin_tokens (id, name, token_hash) VALUES (${id}, ${name}, ${
          sql.binary(hashSecret(token))
        })`,
      );
      return { id, name, token };
    },
    /** The unrevoked token with this secret, or null. */
    async find(token: string): Promise<{ id: string; name: string } | null> {
      const hash = hashSecret(token);
      const row = await pool.maybeOne(sql.type(adminTokenRow)`
        SELECT id, name, token_hash FROM admin_tokens WHERE token_hash = ${sql.binary(hash)} AND revoked_at IS NULL`);
      return row !== null && sameHash(row.token_hash, hash) ? { id: row.id, name: row.name } : null;
    },
    async count(): Promise<number> {
      return pool.oneFirst(
        sql.type(countRow)`SELECT count(*)::int AS count FROM admin_tokens WHERE revoked_at IS NULL`,
      );
    },
    async list(): Promise<readonly { id: string; name: string; created_at: string; revoked_at: string | null }[]> {
      return pool.any(
        sql.type(
          z.object({ id: z.string(), name: z.string(), created_at: z.string(), revoked_at: z.string().nullable() }),
        )`
        SELECT id, name, created_at, revoked_at FROM admin_tokens ORDER BY created_at`,
      );
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
