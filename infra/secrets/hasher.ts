// The server's secrets key at work: HMAC-SHA256 of a secret value, as the marker the log keeps
// (domain/device/secrets.ts walks the shapes; this file only hashes).
import { createHash, createHmac } from 'node:crypto';
import type { HashSecret } from '../../domain/device/secrets.ts';

/** Hashes secret values with one key; `keyId` names the key in every marker. */
export type SecretHasher = { keyId: string; hash: HashSecret };

/** The shortest key accepted: 32 bytes (256 bits), as HMAC-SHA256 wants. */
export const MIN_SECRETS_KEY_BYTES = 32;

/** The key's fingerprint in markers: 8 hex digits, so a marker written under another key shows it. */
export function secretsKeyId(key: Uint8Array): string {
  return createHash('sha256').update('devicetrail secrets key id\n').update(key).digest('hex').slice(0, 8);
}

/**
 * A hasher for `key`. A value is hashed with its JSON type in front (`s:` text, `j:` anything
 * else as JSON), so the text "1" and the number 1 stay apart.
 */
export function createSecretHasher(key: Uint8Array): SecretHasher {
  if (key.length < MIN_SECRETS_KEY_BYTES) {
    throw new Error(`the secrets key must be at least ${MIN_SECRETS_KEY_BYTES} bytes`);
  }
  const keyId = secretsKeyId(key);
  const prefix = `hmac-sha256:${keyId}:`;
  const hash: HashSecret = (value) => {
    const text = typeof value === 'string' ? `s:${value}` : `j:${JSON.stringify(value ?? null)}`;
    return prefix + createHmac('sha256', key).update(text).digest('hex');
  };
  return { keyId, hash };
}
