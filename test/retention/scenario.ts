// A fleet with months of history for the retention suites: devices written through the event
// store with injected timestamps (partitions created on demand), and a provisioning key.
import type { DatabasePool } from 'slonik';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import { appendHistory, generateHistory } from '../../bench/generate-history.ts';

export const DAY = 86_400_000;

/** Options: how many devices, days and events per device; devices from `lateFrom` on register `lateDays` later. */
export type FleetOptions = {
  now: string;
  devices: number;
  days: number;
  eventsPerDevice: number;
  lateFrom?: number;
  lateDays?: number;
};

/** Device uuids of the scenario, in order. */
export const deviceId = (i: number): string => `7e700000-0000-4000-8000-${String(i).padStart(12, '0')}`;

/** The provisioning key of the scenario. */
export const KEY_ID = '7e7e0000-0000-4000-8000-000000000001';

/** Writes the fleet's history; returns the uuids. */
export async function writeFleet(pool: DatabasePool, options: FleetOptions): Promise<string[]> {
  const store = createEventStore(pool);
  const now = Date.parse(options.now);
  const start = now - options.days * DAY;
  await pool.transaction(async (tx) => {
    const head = await store.head(tx, 'provisioning_key', KEY_ID);
    await store.append(tx, 'provisioning_key', KEY_ID, head, [
      {
        event_type: 'provisioning_key.created',
        data: { fleet_id: 'fleet-r', description: 'retention test', expires_at: null, max_devices: null },
        metadata: { actor: { type: 'admin', id: 'test' } },
        timestamp: new Date(start).toISOString(),
        source: 'api',
      },
      {
        event_type: 'provisioning_key.revoked',
        data: { reason: 'rotated' },
        metadata: { actor: { type: 'admin', id: 'test' } },
        timestamp: new Date(start + 2 * DAY).toISOString(),
        source: 'api',
      },
    ]);
  });
  const uuids: string[] = [];
  for (let i = 0; i < options.devices; i += 1) {
    const uuid = deviceId(i);
    const late = options.lateFrom !== undefined && i >= options.lateFrom ? (options.lateDays ?? 0) * DAY : 0;
    const first = start + late + i * 7 * 60_000;
    const events = generateHistory({
      uuid,
      count: options.eventsPerDevice,
      start: new Date(first).toISOString(),
      spanMs: (now - first) * 0.9,
      seed: i + 1,
      fleet: 'fleet-r',
    })
      // nothing in the future of the scenario's "now" (generated timestamps only go forwards)
      .filter((e) => Date.parse(e.timestamp) < now - 3_600_000);
    await appendHistory(pool, store, uuid, events, 2_000);
    uuids.push(uuid);
  }
  return uuids;
}
