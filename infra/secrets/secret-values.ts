// The secret_values table (migration 014): what target markers stand for, outside the event log.
// A target's values are kept before its event is appended; a device's poll reads them back;
// an admin erases one (crypto-shredding: the value goes, the log keeps the marker).
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { hashEventSecrets, type HashSecret, hashStateSecrets, hashTargetSecrets } from '../../domain/device/secrets.ts';
import type { DeviceState } from '../../domain/device/state.ts';
import { STORED_BYTES } from '../postgres/pool.ts';
import { transaction } from '../postgres/transaction.ts';

const valueRow = z.object({ hash: z.string(), value: z.unknown(), erased_at: z.string().nullable() });
const statusRow = z.object({
  hash: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  erased_at: z.string().nullable(),
});

/** A kept value, or that it was erased (then `value` is null). */
export type SecretValue = z.infer<typeof valueRow>;

/** What an admin sees of a kept secret: never its value. */
export type SecretStatus = z.infer<typeof statusRow>;

/**
 * Keeps each marker's value. A marker already kept is left as it is, unless it was erased: a
 * target that names the value again brings it back (the admin typed it again).
 */
export async function keepSecretValues(
  connection: CommonQueryMethods,
  values: ReadonlyMap<string, unknown>,
  now: string,
): Promise<void> {
  if (values.size === 0) return;
  const rows = [...values].map(([hash, value]) => [hash, JSON.stringify(value ?? null)]);
  await connection.query(sql.unsafe`
    INSERT INTO secret_values (hash, value, created_at, updated_at)
    SELECT hash, value::jsonb, ${now}::timestamptz, ${now}::timestamptz
      FROM ${sql.unnest(rows, ['text', 'text'])} AS v(hash, value)
    ON CONFLICT (hash) DO UPDATE SET value = EXCLUDED.value, erased_at = NULL, updated_at = EXCLUDED.updated_at
     WHERE secret_values.erased_at IS NOT NULL`);
}

/** The kept values of `hashes` (erased ones with a null value); an unknown hash has no entry. */
export async function readSecretValues(
  connection: CommonQueryMethods,
  hashes: readonly string[],
): Promise<Map<string, SecretValue>> {
  if (hashes.length === 0) return new Map();
  const rows = await connection.any(sql.type(valueRow)`
    SELECT hash, value, erased_at FROM secret_values WHERE hash = ANY(${sql.array(hashes, 'text')})`);
  return new Map(rows.map((row) => [row.hash, row]));
}

/** The status of `hashes` (when kept, when erased), without their values. */
export async function readSecretStatus(
  connection: CommonQueryMethods,
  hashes: readonly string[],
): Promise<Map<string, SecretStatus>> {
  if (hashes.length === 0) return new Map();
  const rows = await connection.any(sql.type(statusRow)`
    SELECT hash, created_at, updated_at, erased_at FROM secret_values WHERE hash = ANY(${sql.array(hashes, 'text')})`);
  return new Map(rows.map((row) => [row.hash, row]));
}

/** Erases a kept value (idempotent: an erased one keeps its first erasure time); null when the hash is unknown. */
export async function eraseSecretValue(
  connection: CommonQueryMethods,
  hash: string,
  now: string,
): Promise<SecretStatus | null> {
  return connection.maybeOne(sql.type(statusRow)`
    UPDATE secret_values
       SET value = NULL, erased_at = COALESCE(erased_at, ${now}::timestamptz)
     WHERE hash = ${hash}
    RETURNING hash, created_at, updated_at, erased_at`);
}

const storedTargetRow = z.object({ uuid: z.string(), version: z.number(), state: z.unknown() });

/**
 * Upgrading to hashed secrets (issue #15): devices whose read model still holds a target's
 * values in the clear (set before secrets were hashed) get those values kept, so the device
 * goes on receiving them, and their read-model state rewritten with markers (the read model is
 * not the log; a row that moved on meanwhile is left to its next write). Returns how many
 * values were kept. A device state already hashed costs one read.
 */
export async function keepStoredTargetSecrets(
  pool: DatabasePool,
  hash: HashSecret,
  now: string,
): Promise<number> {
  let after = '';
  let kept = 0;
  for (;;) {
    // the stored bytes: the pool's secrets interceptor would show them hashed already
    const rows = await pool.any(sql.type(storedTargetRow)`
      ${STORED_BYTES} SELECT uuid, version, state FROM devices
       WHERE uuid > ${after} AND state->>'status' = 'registered'
       ORDER BY uuid LIMIT 500`);
    if (rows.length === 0) return kept;
    after = rows[rows.length - 1]!.uuid;
    for (const row of rows) {
      const values = new Map<string, unknown>();
      const state = row.state as DeviceState;
      const hashed = hashStateSecrets(state, hash);
      if (hashed === state) continue;
      if (state.status === 'registered' && state.target !== null) {
        hashTargetSecrets(state.target, hash, (marker, value) => values.set(marker, value));
      }
      await transaction(pool, async (tx) => {
        await keepSecretValues(tx, values, now);
        await tx.query(sql.unsafe`
          UPDATE devices SET state = ${
          JSON.stringify(hashed)
        }::jsonb WHERE uuid = ${row.uuid} AND version = ${row.version}`);
      });
      kept += values.size;
    }
  }
}

const storedDeliveryRow = z.object({ id: z.string(), event_type: z.string(), payload: z.string() });

/**
 * Upgrading to hashed secrets, the other copy of old events: webhook deliveries queued (or
 * kept) by an older release hold their event as it was then, values in the clear. Their
 * payload's `data` is rewritten with markers (deliveries are not the log; the interceptor
 * already hashes them on every read, this takes the values off the disk). Only deliveries
 * queued before the secrets migration was applied, plus a day for instances of the older
 * release still running then, of the two event types that can carry secrets, are read: a
 * later start reads the same few again and rewrites none. Returns how many were rewritten.
 */
export async function hashStoredDeliveryPayloads(pool: DatabasePool, hash: HashSecret): Promise<number> {
  let after = '00000000-0000-0000-0000-000000000000';
  let rewritten = 0;
  for (;;) {
    // the payload as text: compared as read, whatever JSON.parse would round (large numbers)
    const rows = await pool.any(sql.type(storedDeliveryRow)`
      ${STORED_BYTES} SELECT id::text AS id, event_type, payload::text AS payload FROM webhook_deliveries
       WHERE id > ${after}::uuid AND event_type IN ('target_state.updated', 'current_state.updated')
         AND created_at < (SELECT applied_at + interval '1 day' FROM schema_migrations WHERE name = '014_secret_values.sql')
       ORDER BY id LIMIT 500`);
    if (rows.length === 0) return rewritten;
    after = rows[rows.length - 1]!.id;
    for (const row of rows) {
      const payload = JSON.parse(row.payload) as { data?: unknown } | null;
      const data = payload?.data;
      if (payload === null || typeof data !== 'object' || data === null || Array.isArray(data)) continue;
      const hashed = hashEventSecrets(row.event_type, data as Record<string, unknown>, hash);
      if (hashed === data) continue;
      // compared with what was read: a delivery changed meanwhile is left to the next start
      const updated = await pool.query(sql.unsafe`
        UPDATE webhook_deliveries SET payload = ${JSON.stringify({ ...payload, data: hashed })}::jsonb
         WHERE id = ${row.id}::uuid AND payload::text = ${row.payload}`);
      rewritten += updated.rowCount;
    }
  }
}

/**
 * What a service does at start to hold no value in the clear outside secret_values (issue
 * #15): the read model's targets (keepStoredTargetSecrets) and the webhook deliveries
 * (hashStoredDeliveryPayloads); says what it did through `log`.
 */
export async function upgradeStoredSecrets(
  pool: DatabasePool,
  hash: HashSecret,
  now: string,
  log: (line: string) => void,
): Promise<void> {
  const kept = await keepStoredTargetSecrets(pool, hash, now);
  if (kept > 0) log(`secrets: kept ${kept} value(s) of targets set before secrets were hashed`);
  const deliveries = await hashStoredDeliveryPayloads(pool, hash);
  if (deliveries > 0) {
    log(`secrets: ${deliveries} webhook deliveries queued before secrets were hashed now hold markers`);
  }
}
