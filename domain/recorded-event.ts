// The stored-event envelope: the row every event has in the log, whatever its aggregate.
// Pure types and one zod schema, so that domain/replay can read recorded events without infra/.
import { z } from 'zod';

/** Who caused an event; stored in metadata.actor. */
export type Actor = { type: 'admin' | 'device' | 'provisioning_key' | 'system'; id: string };

/** Metadata every API event carries (DESIGN.md "Metadata"). Keys are snake_case. */
export type EventMetadata = {
  ip_address?: string | null;
  user_agent?: string | null;
  endpoint?: string | null;
  request_id?: string | null;
  actor: Actor;
  provisioning_key_id?: string;
  causation_id?: string;
  [key: string]: unknown;
};

/** An event row as stored. */
export const storedEventRow = z.object({
  event_id: z.string(),
  event_type: z.string(),
  aggregate_type: z.string(),
  aggregate_id: z.string(),
  aggregate_version: z.number(),
  global_position: z.number(),
  transaction_id: z.string(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()),
  timestamp: z.string(),
  source: z.string(),
  hash: z.string(),
});
export type StoredEvent = z.infer<typeof storedEventRow>;
