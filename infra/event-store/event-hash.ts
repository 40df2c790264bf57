// Tamper evidence: each event's hash covers its canonical content and the previous hash
// of its aggregate, so altering, removing or reordering an event breaks the chain.
import { createHash } from 'node:crypto';

/** The hash a stream's first event chains from. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * JSON with object keys sorted at every depth: the same value always gives the same text.
 * Built by appending to one string (no array of parts per object: the hash of every event
 * appended goes through here).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    let text = '[';
    // a hole (never in data read back from PostgreSQL) stays empty, as Array.prototype.map left it
    for (let i = 0; i < value.length; i += 1) {
      text += (i === 0 ? '' : ',') + (i in value ? canonicalJson(value[i]) : '');
    }
    return `${text}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  let text = '{';
  for (const key of keys) {
    const item = record[key];
    if (item === undefined) continue;
    text += `${text.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(item)}`;
  }
  return `${text}}`;
}

/** The fields a hash covers. */
export type HashedFields = {
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  aggregate_version: number;
  data: unknown;
  metadata: unknown;
  timestamp: string;
  source: string;
};

/** sha-256 hex of the previous hash and the event's canonical content. */
export function eventHash(previousHash: string, event: HashedFields): string {
  const content = canonicalJson({
    event_id: event.event_id,
    event_type: event.event_type,
    aggregate_type: event.aggregate_type,
    aggregate_id: event.aggregate_id,
    aggregate_version: event.aggregate_version,
    data: event.data,
    metadata: event.metadata,
    timestamp: new Date(event.timestamp).toISOString(),
    source: event.source,
  });
  return createHash('sha256').update(previousHash).update('\n').update(content).digest('hex');
}
