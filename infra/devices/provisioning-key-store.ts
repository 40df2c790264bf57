// The provisioning key aggregate's persistence: read model `provisioning_keys` and adapter.
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import {
  evolveProvisioningKey,
  initialProvisioningKeyState,
  type ProvisioningKeyState,
} from '../../domain/provisioning-key/decider.ts';
import type { ProvisioningKeyEvent } from '../../domain/provisioning-key/events.ts';
import type { AggregateAdapter } from '../event-store/command-handler.ts';
import { streamHeadRow } from '../event-store/event-store.ts';
import { type CredentialHasher, findByHash, matchesHashes, PEPPERED } from './credentials.ts';
import { Buffer } from 'node:buffer';

const loadRow = streamHeadRow.extend({ state: z.unknown() });

/** A provisioning key as admins see it (never the secret). */
export const provisioningKeyView = z.object({
  id: z.string(),
  fleet_id: z.string(),
  description: z.string().nullable(),
  expires_at: z.string().nullable(),
  max_devices: z.number().nullable(),
  devices_count: z.number(),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
});
export type ProvisioningKeyView = z.infer<typeof provisioningKeyView>;

/**
 * The adapter for handleCommand. The secret's hash is not part of the state; the caller
 * inserts it in the same transaction (see `insertKeyHash`).
 */
export const provisioningKeyAdapter: AggregateAdapter<ProvisioningKeyState, ProvisioningKeyEvent> = {
  aggregateType: 'provisioning_key',
  initialState: initialProvisioningKeyState,
  evolve: evolveProvisioningKey,
  async load(connection, id, lock) {
    // lock first, in its own statement (see deviceAdapter.load: a joined FOR UPDATE would pair
    // a fresh stream head with the read model row of the statement's older snapshot)
    if (lock) {
      await connection.query(
        sql.unsafe`SELECT 1 FROM streams WHERE aggregate_type = 'provisioning_key' AND aggregate_id = ${id} FOR UPDATE`,
      );
    }
    const row = await connection.maybeOne(sql.type(loadRow)`
      SELECT s.version, s.last_hash, s.last_timestamp, k.state
        FROM streams s LEFT JOIN provisioning_keys k ON k.id::text = s.aggregate_id
       WHERE s.aggregate_type = 'provisioning_key' AND s.aggregate_id = ${id}`);
    if (row === null || row.state === null) return null;
    return {
      state: row.state as ProvisioningKeyState,
      head: { version: row.version, last_hash: row.last_hash, last_timestamp: row.last_timestamp },
    };
  },
  async save(transaction, id, state) {
    if (state.status === 'none') return;
    await transaction.query(sql.unsafe`
      UPDATE provisioning_keys SET state = ${sql.jsonb(state as never)}, version = ${state.version},
             revoked_at = ${state.revoked_at}::timestamptz
       WHERE id = ${id}`);
  },
};

/** Inserts the key's row (with its hash) before the created event's projection updates it. */
export async function insertKeyRow(
  connection: CommonQueryMethods,
  hasher: CredentialHasher,
  id: string,
  secret: string,
  state: ProvisioningKeyState,
): Promise<void> {
  if (state.status === 'none') return;
  await connection.query(sql.unsafe`
    INSERT INTO provisioning_keys (id, key_hash, hash_scheme, fleet_id, description, expires_at, max_devices, created_at,
                                   state, version)
    VALUES (${id}, ${sql.binary(hasher.hash(secret))}, ${PEPPERED}, ${state.fleet_id}, ${state.description},
            ${state.expires_at}::timestamptz,
            ${state.max_devices}, ${state.created_at}::timestamptz, ${sql.jsonb(state as never)}, ${state.version})`);
}

const keyLookupRow = z.object({
  id: z.string(),
  hash: z.instanceof(Buffer),
  scheme: z.enum(['sha256', 'hmac-sha256']),
  state: z.unknown(),
});

/** Provisioning key queries. */
export function createProvisioningKeyQueries(pool: DatabasePool, hasher: CredentialHasher) {
  return {
    /** The key with this secret (any status), or null. */
    async findBySecret(secret: string): Promise<{ id: string; state: ProvisioningKeyState } | null> {
      const row = await findByHash(
        hasher,
        secret,
        (hashes) =>
          pool.maybeOne(sql.type(keyLookupRow)`
            SELECT id, key_hash AS hash, hash_scheme AS scheme, state FROM provisioning_keys
             WHERE ${matchesHashes('key_hash', 'hash_scheme', hashes)}
             ORDER BY hash_scheme LIMIT 1`),
        async (old, peppered) => {
          await pool.query(sql.unsafe`
            UPDATE provisioning_keys SET key_hash = ${sql.binary(peppered)}, hash_scheme = ${PEPPERED}
             WHERE id = ${old.id} AND hash_scheme = 'sha256'`);
        },
      );
      return row === null ? null : { id: row.id, state: row.state as ProvisioningKeyState };
    },
    async list(): Promise<readonly ProvisioningKeyView[]> {
      return pool.any(sql.type(provisioningKeyView)`
        SELECT id, fleet_id, description, expires_at, max_devices, devices_count, created_at, revoked_at
          FROM provisioning_keys ORDER BY created_at`);
    },
    async get(id: string): Promise<ProvisioningKeyView | null> {
      return pool.maybeOne(sql.type(provisioningKeyView)`
        SELECT id, fleet_id, description, expires_at, max_devices, devices_count, created_at, revoked_at
          FROM provisioning_keys WHERE id::text = ${id}`);
    },
  };
}

/**
 * Counts one more device against the key, in the registration's transaction.
 * False when the key has reached max_devices (so concurrent registrations cannot exceed it).
 */
export async function claimKeySlot(connection: CommonQueryMethods, id: string): Promise<boolean> {
  const row = await connection.maybeOne(sql.type(z.object({ devices_count: z.number() }))`
    UPDATE provisioning_keys SET devices_count = devices_count + 1
     WHERE id = ${id} AND (max_devices IS NULL OR devices_count < max_devices)
    RETURNING devices_count`);
  return row !== null;
}
