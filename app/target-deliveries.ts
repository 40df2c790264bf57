// Notes when a target version reaches its device (issue #18), for both transports: the HTTP
// poll that first answers a version with 200, and the embedded broker writing a version's
// notice to the device's connection. Each (device, transport) remembers the newest version
// it noted, so a device polling every minute writes one row per target change, not per poll;
// a restart forgets, and the table keeps the first delivery anyway (ON CONFLICT DO NOTHING).
// A delivery that cannot be written is logged, never an error for the device.
import type { DatabasePool } from 'slonik';
import type { Transport } from '../domain/replay/source.ts';
import { recordTargetDelivery } from '../infra/devices/target-deliveries.ts';

/** Records first deliveries of target versions. */
export type DeliveryRecorder = {
  /** Version `version` of the device's target reached it over `transport` now. */
  note: (uuid: string, version: number, transport: Transport) => Promise<void>;
};

/** Devices remembered per recorder (the oldest is forgotten beyond it; forgetting only costs a no-op insert). */
const REMEMBERED = 100_000;

/** A recorder writing to `pool`, stamping with `clock`. */
export function createDeliveryRecorder(
  pool: DatabasePool,
  clock: () => Date,
  logError: (message: string, error: unknown) => void,
): DeliveryRecorder {
  const noted = new Map<string, number>();
  return {
    async note(uuid, version, transport) {
      if (version <= 0) return;
      const key = `${transport}:${uuid}`;
      if ((noted.get(key) ?? 0) >= version) return;
      try {
        await recordTargetDelivery(pool, { uuid, version, transport, at: clock().toISOString() });
        noted.delete(key);
        noted.set(key, version);
        if (noted.size > REMEMBERED) noted.delete(noted.keys().next().value!);
      } catch (error) {
        logError(`recording the ${transport} delivery of target version ${version} to ${uuid}`, error);
      }
    },
  };
}
