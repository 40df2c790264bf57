// Which secrets keys write to this database (migration 018). Every marker names its key
// (`hmac-sha256:<key id>:…`); instances that do not share one key make different markers for
// the same value, and a device reporting a value its target holds then shows drift it does not
// have. Each instance records its key's id at start and then periodically; one that finds
// another id recorded within the window says so (a deliberate change of key shows the same
// way for one window: docs/OPERATIONS.md "The secrets key").
import type { DatabasePool } from 'slonik';
import { sql } from 'slonik';
import { z } from 'zod';

/** How recently another key must have been recorded to count as in use (two refreshes). */
export const KEY_IN_USE_WINDOW_MS = 60 * 60_000;

/** How often a running instance records its key. */
export const KEY_REFRESH_MS = 30 * 60_000;

const otherKeyRow = z.object({ key_id: z.string(), last_seen_at: z.string() });

/** Another key recorded within the window. */
export type OtherKey = z.infer<typeof otherKeyRow>;

/** Records `keyId` as in use at `now`; returns the other keys recorded within the window before `now`. */
export async function recordSecretsKey(pool: DatabasePool, keyId: string, now: Date): Promise<OtherKey[]> {
  const at = now.toISOString();
  await pool.query(sql.unsafe`
    INSERT INTO secrets_keys (key_id, first_seen_at, last_seen_at) VALUES (${keyId}, ${at}::timestamptz, ${at}::timestamptz)
    ON CONFLICT (key_id) DO UPDATE SET last_seen_at = GREATEST(secrets_keys.last_seen_at, EXCLUDED.last_seen_at)`);
  return [
    ...await pool.any(sql.type(otherKeyRow)`
      SELECT key_id, last_seen_at FROM secrets_keys
       WHERE key_id <> ${keyId} AND last_seen_at >= ${
      new Date(now.getTime() - KEY_IN_USE_WINDOW_MS).toISOString()
    }::timestamptz
       ORDER BY last_seen_at DESC`),
  ];
}

/** The warning for `others`, or null when there are none. */
export function otherKeysWarning(keyId: string, others: readonly OtherKey[]): string | null {
  if (others.length === 0) return null;
  const list = others.map((o) => `${o.key_id} (last recorded ${o.last_seen_at})`).join(', ');
  return `secrets: another secrets key wrote to this database within the last hour: ${list}; this instance's is ${keyId}. ` +
    'Instances must share one SECRETS_KEY, or a device shows drift it does not have; after a deliberate change of ' +
    'key, set the targets again (docs/OPERATIONS.md "The secrets key")';
}

/**
 * Records the key now and every `intervalMs`, logging a warning whenever another key is in
 * use; `stop()` ends it. A failed record is reported and tried again at the next interval.
 */
export function watchSecretsKey(
  pool: DatabasePool,
  keyId: string,
  options: {
    warn: (message: string) => void;
    onError: (message: string, error: unknown) => void;
    clock?: () => Date;
    intervalMs?: number;
  },
): { ready: Promise<void>; stop: () => void } {
  const clock = options.clock ?? (() => new Date());
  const check = async () => {
    try {
      const warning = otherKeysWarning(keyId, await recordSecretsKey(pool, keyId, clock()));
      if (warning !== null) options.warn(warning);
    } catch (error) {
      options.onError("secrets: recording this instance's key failed", error);
    }
  };
  const timer = setInterval(() => void check(), options.intervalMs ?? KEY_REFRESH_MS);
  timer.unref();
  return { ready: check(), stop: () => clearInterval(timer) };
}
