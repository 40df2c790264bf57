// Connectivity: a device that makes no authenticated call for the connectivity timeout is
// lost; its next call restores it. Heartbeats are not events (the shell keeps the device's
// last contact), so the shell passes the last contact in.
import type { DeviceEvent } from './events.ts';
import { elapsedMs } from './reconciliation.ts';
import type { RegisteredDevice } from './state.ts';

/**
 * device.connection_lost when an active, connected device's last contact is at least
 * `timeoutMs` before `now`. A disabled device is never reported lost.
 */
export function connectionLostIfSilent(
  device: RegisteredDevice,
  lastContactAt: string,
  now: string,
  timeoutMs: number,
): DeviceEvent[] {
  if (!device.is_active || device.connectivity.status === 'lost') return [];
  const silent = elapsedMs(lastContactAt, now);
  if (silent < timeoutMs) return [];
  return [{
    type: 'device.connection_lost',
    timestamp: now,
    data: { last_seen_at: lastContactAt, silent_ms: silent, timeout_ms: timeoutMs },
  }];
}

/**
 * device.connection_restored when a lost device calls again, with the whole silence (from
 * its last contact before the loss). A disabled device's calls are refused, so they restore
 * nothing; its first call after being enabled again does.
 */
export function connectionRestoredIfLost(device: RegisteredDevice, now: string): DeviceEvent[] {
  if (!device.is_active || device.connectivity.status !== 'lost') return [];
  const { since, last_seen_at: lastSeenAt } = device.connectivity;
  return [{
    type: 'device.connection_restored',
    timestamp: now,
    data: { last_seen_at: lastSeenAt, lost_at: since, silent_ms: elapsedMs(lastSeenAt, now) },
  }];
}
