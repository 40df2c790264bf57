// Console sessions (issue #17): a browser signs in with an admin token and gets a session
// secret in a cookie; only the secret's peppered hash is stored (migrations 008, 014). A session is
// valid while it has not ended (sign out), has not expired, and its admin token is neither
// revoked nor expired, so `npm run admin -- revoke-token` ends every session opened with it.
import { randomUUID } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { type CredentialHasher, findByHash, generateSecret, matchesHashes, PEPPERED } from '../devices/credentials.ts';

/** Prefix of console session secrets (never accepted as a bearer token). */
export const SESSION_SECRET_PREFIX = 'dts_';

const sessionRow = z.object({
  id: z.string(),
  hash: z.instanceof(Buffer),
  scheme: z.enum(['sha256', 'hmac-sha256']),
  admin_token_id: z.string(),
  admin_name: z.string(),
  created_at: z.string(),
  expires_at: z.string(),
});

/** A valid session: who it acts for and until when. */
export type ConsoleSession = {
  id: string;
  admin: { id: string; name: string };
  created_at: string;
  expires_at: string;
};

/** Session queries; `now` is passed in so tests control expiry. */
export function createConsoleSessions(pool: DatabasePool, hasher: CredentialHasher) {
  return {
    /** Opens a session for an admin token; the secret is returned here only. */
    async open(
      input: { adminTokenId: string; now: Date; ttlMs: number; ipAddress: string | null; userAgent: string | null },
    ): Promise<{ id: string; secret: string; expires_at: string }> {
      const id = randomUUID();
      const secret = generateSecret(SESSION_SECRET_PREFIX);
      const expiresAt = new Date(input.now.getTime() + input.ttlMs).toISOString();
      await pool.query(sql.unsafe`
        INSERT INTO console_sessions (id, secret_hash, hash_scheme, admin_token_id, created_at, expires_at, ip_address,
                                      user_agent)
        VALUES (${id}, ${
        sql.binary(hasher.hash(secret))
      }, ${PEPPERED}, ${input.adminTokenId}, ${input.now.toISOString()},
                ${expiresAt}, ${input.ipAddress}, ${input.userAgent})`);
      return { id, secret, expires_at: expiresAt };
    },

    /** The valid session with this secret at `now`, or null (unknown, ended, expired, token revoked). */
    async find(secret: string, now: Date): Promise<ConsoleSession | null> {
      if (!secret.startsWith(SESSION_SECRET_PREFIX)) return null;
      const row = await findByHash(
        hasher,
        secret,
        (hashes) =>
          pool.maybeOne(sql.type(sessionRow)`
            SELECT s.id, s.secret_hash AS hash, s.hash_scheme AS scheme, s.admin_token_id, t.name AS admin_name,
                   s.created_at, s.expires_at
              FROM console_sessions s JOIN admin_tokens t ON t.id = s.admin_token_id
             WHERE ${matchesHashes('s.secret_hash', 's.hash_scheme', hashes)}
               AND s.ended_at IS NULL AND s.expires_at > ${now.toISOString()}::timestamptz
               AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
             ORDER BY s.hash_scheme LIMIT 1`),
        async (old, peppered) => {
          await pool.query(sql.unsafe`
            UPDATE console_sessions SET secret_hash = ${sql.binary(peppered)}, hash_scheme = ${PEPPERED}
             WHERE id = ${old.id} AND hash_scheme = 'sha256'`);
        },
      );
      if (row === null) return null;
      return {
        id: row.id,
        admin: { id: row.admin_token_id, name: row.admin_name },
        created_at: row.created_at,
        expires_at: row.expires_at,
      };
    },

    /** Ends the session with this secret (sign out); false when none was open. */
    async end(secret: string, now: Date): Promise<boolean> {
      const result = await pool.query(sql.unsafe`
        UPDATE console_sessions SET ended_at = ${now.toISOString()}
         WHERE ${
        matchesHashes('secret_hash', 'hash_scheme', { peppered: hasher.hash(secret), legacy: hasher.legacy(secret) })
      }
           AND ended_at IS NULL`);
      return result.rowCount > 0;
    },

    /** Deletes sessions that ended or expired more than a day before `now`; returns how many. */
    async prune(now: Date): Promise<number> {
      const before = new Date(now.getTime() - 86_400_000).toISOString();
      const result = await pool.query(sql.unsafe`
        DELETE FROM console_sessions WHERE expires_at < ${before}::timestamptz OR ended_at < ${before}::timestamptz`);
      return result.rowCount;
    },
  };
}

/** The session queries' type. */
export type ConsoleSessions = ReturnType<typeof createConsoleSessions>;
