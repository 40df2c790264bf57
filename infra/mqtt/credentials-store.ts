// Devices' MQTT credentials (issue #18): a username `device_<uuid>` and a random password,
// shown once and stored only as its sha-256 hash (infra/devices/credentials.ts: long random
// secrets, looked up by hash, compared in constant time). Issuing again replaces the
// password: the old one stops working.
import { randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { hashSecret, sameHash } from '../devices/credentials.ts';
import { mqttUsername, uuidOfUsername } from './topics.ts';

/** A credential as the device receives it (the password only this once). */
export type IssuedCredential = { uuid: string; username: string; password: string };

/** What the embedded broker needs to admit a device: its password hash, whether it is enabled, its target. */
export type StoredCredential = {
  uuid: string;
  passwordHash: Buffer;
  isActive: boolean;
  targetVersion: number;
  targetUpdatedAt: string | null;
};

const credentialRow = z.object({
  uuid: z.string(),
  password_hash: z.instanceof(Buffer),
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
export async function issueCredential(connection: CommonQueryMethods, uuid: string): Promise<IssuedCredential | null> {
  const username = mqttUsername(uuid);
  const password = generatePassword();
  const row = await connection.maybeOne(sql.type(uuidRow)`
    INSERT INTO mqtt_credentials (uuid, username, password_hash)
    SELECT uuid, ${username}, ${sql.binary(hashSecret(password))} FROM device_credentials WHERE uuid = ${uuid}
    ON CONFLICT (uuid) DO UPDATE SET password_hash = EXCLUDED.password_hash, issued_at = now()
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
    SELECT c.uuid, c.password_hash, d.is_active, d.target_version,
           d.state #>> '{target,updated_at}' AS target_updated_at
      FROM mqtt_credentials c JOIN devices d ON d.uuid = c.uuid
     WHERE c.username = ${username}`);
  if (row === null) return null;
  return {
    uuid: row.uuid,
    passwordHash: row.password_hash,
    isActive: row.is_active,
    targetVersion: row.target_version,
    targetUpdatedAt: row.target_updated_at,
  };
}

/** Whether `password` is the credential's, in time independent of where they differ. */
export function passwordMatches(credential: StoredCredential, password: string | Buffer | undefined): boolean {
  if (password === undefined) return false;
  const text = typeof password === 'string' ? password : Buffer.from(password).toString('utf8');
  return sameHash(credential.passwordHash, hashSecret(text));
}
