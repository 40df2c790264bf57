// A device's contacts (any authenticated call it makes): the heartbeat moves last_seen_at
// in the read model (not an event), and a device the connectivity sweeper marked lost gets
// device.connection_restored.
import {
  type CommonQueryMethods,
  type DatabasePool,
  type FragmentSqlToken,
  type IdentifierSqlToken,
  sql,
} from 'slonik';
import { z } from 'zod';
import { decide } from '../../domain/device/decide.ts';
import type { DeviceState } from '../../domain/device/state.ts';
import { type CommandResult, handleCommand } from '../event-store/command-handler.ts';
import { deviceAdapter } from './device-store.ts';
import type { EventStore } from '../event-store/event-store.ts';
import type { EventMetadata } from '../../domain/recorded-event.ts';

const touchedRow = z.object({ connection_lost: z.boolean() });

/**
 * Moves last_seen_at forward; returns whether the device is marked lost (null: no such
 * device). Waits for a sweeper that holds the row, then sees what it wrote.
 */
export async function touchContact(connection: CommonQueryMethods, uuid: string, at: string): Promise<boolean | null> {
  const row = await connection.maybeOne(sql.type(touchedRow)`
    UPDATE devices SET last_seen_at = GREATEST(last_seen_at, ${at}::timestamptz)
     WHERE uuid = ${uuid} RETURNING connection_lost`);
  return row === null ? null : row.connection_lost;
}

/**
 * The same contact rule for many devices in one statement a batch writes (the metrics
 * writer joins it to its INSERT): RETURNING uuid, connection_lost per device found. The
 * contacts are a list, or a relation of that statement with columns (uuid, at) holding one row
 * per device; a list keeps one entry per device (the latest instant), since an UPDATE … FROM
 * applies one joined row per row.
 */
export function touchContacts(
  contacts: readonly { uuid: string; at: string }[] | IdentifierSqlToken,
): FragmentSqlToken {
  let source: FragmentSqlToken;
  if (Array.isArray(contacts)) {
    const latest = new Map<string, string>();
    for (const { uuid, at } of contacts as readonly { uuid: string; at: string }[]) {
      const seen = latest.get(uuid);
      if (seen === undefined || Date.parse(at) > Date.parse(seen)) latest.set(uuid, at);
    }
    const rows = JSON.stringify([...latest].map(([uuid, at]) => ({ uuid, at })));
    // the LIMIT is the planner's row count (see appendStatement)
    source = sql.fragment`(SELECT * FROM jsonb_to_recordset(${rows}::jsonb) AS c(uuid text, at timestamptz)
                            LIMIT ${latest.size}) c`;
  } else source = sql.fragment`${contacts as IdentifierSqlToken} c`;
  return sql.fragment`
    UPDATE devices d SET last_seen_at = GREATEST(d.last_seen_at, c.at)
      FROM ${source}
     WHERE d.uuid = c.uuid
    RETURNING d.uuid, d.connection_lost`;
}

/**
 * Records a contact; appends device.connection_restored when the device was lost (exactly
 * once). Returns the command's result when it had to look at the stream, else null.
 */
export async function recordDeviceContact(
  pool: DatabasePool,
  store: EventStore,
  uuid: string,
  now: string,
  metadata: EventMetadata,
): Promise<CommandResult<DeviceState> | null> {
  if ((await touchContact(pool, uuid, now)) !== true) return null;
  // concurrent calls may both get here; the stream's compare-and-set lets one restore
  return handleCommand(pool, store, deviceAdapter, uuid, (state) => decide({ type: 'record_contact', now }, state), {
    metadata,
    source: 'api',
  });
}
