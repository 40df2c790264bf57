// Devices' MQTT credentials (issue #18): a username `device_<uuid>` and a random password,
// shown once and stored only as its peppered hash (infra/devices/credentials.ts: long random
// secrets, hashed with the server's pepper, compared in constant time; a password stored as a
// plain sha-256 before migration 017 still works and is rewritten peppered when it does). Issuing again replaces the
// password: the old one stops working.
import { randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { type CredentialHasher, type HashScheme, PEPPERED } from '../devices/credentials.ts';
import { mqttUsername, uuidOfUsername } from './topics.ts';

/** A credential as the device receives it (the password only this once). */
export type IssuedCredential = { uuid: string; username: string; password: string };

/** What the embedded broker needs to admit a device: its password hash, whether it is enabled, its target. */
export type StoredCredential = {
  uuid: string;
  passwordHash: Buffer;
  /** How passwordHash was made ('sha256': stored before migration 017). */
  hashScheme: HashScheme;
  isActive: boolean;
  targetVersion: number;
  targetUpdatedAt: string | null;
};

const credentialRow = z.object({
  uuid: z.string(),
  password_hash: z.instanceof(Buffer),
  hash_scheme: z.enum(['sha256', 'hmac-sha256']),
  is_active: z.boolean(),
  target_version: z.number(),
  target_updated_at: z.string().nullable(),
});
const uuidRow = z.object({ uuid: z.string() });

/** A new random password: 32 bytes, base64url (no character a broker or a shell would mangle). */
export const generatePassword = (): string => randomBytes(32).toString('base64url');

/**
 * Issues (or re-issues) the device's credential and returns it, password included: the only
 * time it is visible. Null when the device has no device key (not registered).
 */
export async function issueCredential(
  connection: CommonQueryMethods,
  hasher: CredentialHasher,
  uuid: string,
): Promise<IssuedCredential | null> {
  const username = mqttUsername(uuid);
  const password = generatePassword();
  const row = await connection.maybeOne(sql.type(uuidRow)`
    INSERT INTO mqtt_credentials (uuid, username, password_hash, hash_scheme)
    SELECT uuid, ${username}, ${sql.binary(hasher.hash(password))}, ${PEPPERED} FROM device_credentials
     WHERE uuid = ${uuid}
    ON CONFLICT (uuid) DO UPDATE SET password_hash = EXCLUDED.password_hash, hash_scheme = EXCLUDED.hash_scheme,
                                     issued_at = now()
    RETURNING uuid`);
  return row === null ? null : { uuid, username, password };
}

/** The credential of a username with its device's admission facts, or null (unknown username). */
export async function findCredential(
  connection: CommonQueryMethods,
  username: string,
): Promise<StoredCredential | null> {
  if (uuidOfUsername(username) === null) return null;
  const row = await connection.maybeOne(sql.type(credentialRow)`
    SELECT c.uuid, c.password_hash, c.hash_scheme, d.is_active, d.target_version,
           d.state #>> '{target,updated_at}' AS target_updated_at
      FROM mqtt_credentials c JOIN devices d ON d.uuid = c.uuid
     WHERE c.username = ${username}`);
  if (row === null) return null;
  return {
    uuid: row.uuid,
    passwordHash: row.password_hash,
    hashScheme: row.hash_scheme,
    isActive: row.is_active,
    targetVersion: row.target_version,
    targetUpdatedAt: row.target_updated_at,
  };
}

/** Whether `password` is the credential's, in time independent of where they differ. */
export function passwordMatches(
  hasher: CredentialHasher,
  credential: StoredCredential,
  password: string | Buffer | undefined,
): boolean {
  if (password === undefined) return false;
  const text = typeof password === 'string' ? password : Buffer.from(password).toString('utf8');
  return hasher.matches(credential.passwordHash, credential.hashScheme, text);
}

/** Rewrites a legacy (sha-256) password hash peppered, after `password` matched it. */
export async function upgradePasswordHash(
  connection: CommonQueryMethods,
  hasher: CredentialHasher,
  credential: StoredCredential,
  password: string | Buffer,
): Promise<void> {
  if (credential.hashScheme === PEPPERED) return;
  const text = typeof password === 'string' ? password : Buffer.from(password).toString('utf8');
  await connection.query(sql.unsafe`
    UPDATE mqtt_credentials SET password_hash = ${sql.binary(hasher.hash(text))}, hash_scheme = ${PEPPERED}
     WHERE uuid = ${credential.uuid} AND hash_scheme = 'sha256'`);
}
