// What the broker learns from the log (issue #18), as an EventListener (at least once, a
// durable checkpoint, one process at a time; infra/realtime/event-listener.ts): a new target
// version is published, retained, to `iot/device/<uuid>/target`, so a subscribed device
// hears of it at once and fetches it (the notice carries the version and the ETag, not the
// target: its secrets stay behind the device's key); a disabled device is disconnected and
// refused until it is enabled again. Publishing a notice twice is harmless (same retained
// message), and so is disabling twice.
import type { DatabasePool } from 'slonik';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { EventListener } from '../../infra/realtime/event-listener.ts';
import type { RealtimeLog } from '../../infra/realtime/leader-loop.ts';
import { targetTopic } from '../../infra/mqtt/topics.ts';

/** The retained notice of a device's newest target. */
export type TargetNotice = { uuid: string; version: number; etag: string; updated_at: string; poll: string };

/** The notice for a `target_state.updated` event. */
export function targetNotice(uuid: string, version: number, updatedAt: string): TargetNotice {
  return { uuid, version, etag: `"${version}"`, updated_at: updatedAt, poll: `/api/v1/device/${uuid}/state` };
}

/** What the listener does to the broker. */
export type BrokerSync = {
  publish: (topic: string, payload: string, options: { qos: 0 | 1; retain: boolean }) => Promise<void>;
  /** The device was disabled (true) or enabled again (false). */
  setDisabled: (uuid: string, disabled: boolean) => Promise<void>;
  /** A notice was handed to the broker, `seconds` after its event. */
  onPublished?: (uuid: string, event: StoredEvent, seconds: number) => void;
};

/** The listener's name (its checkpoint; one process runs it at a time). */
export const MQTT_LISTENER = 'mqtt-broker-sync';

/** Creates (does not start) the listener. */
export function createBrokerSyncListener(
  pool: DatabasePool,
  sync: BrokerSync,
  options: { pollIntervalMs: number; log: RealtimeLog; clock: () => Date },
): EventListener {
  const listener = new EventListener({
    name: MQTT_LISTENER,
    pool,
    startFrom: 'now',
    pollIntervalMs: options.pollIntervalMs,
    // a broker that is away for a while must not dead-letter a disable: keep trying for minutes
    maxAttempts: 20,
    select: () => Promise.resolve({ types: ['target_state.updated', 'device.online', 'device.offline'] }),
    log: options.log,
  });
  listener.onEventType('target_state.updated', async (event) => {
    const version = Number(event.data['version']);
    const notice = targetNotice(event.aggregate_id, version, event.timestamp);
    await sync.publish(targetTopic(event.aggregate_id), JSON.stringify(notice), { qos: 1, retain: true });
    sync.onPublished?.(
      event.aggregate_id,
      event,
      (options.clock().getTime() - Date.parse(event.timestamp)) / 1000,
    );
  });
  listener.onEventType('device.offline', (event) => sync.setDisabled(event.aggregate_id, true));
  listener.onEventType('device.online', (event) => sync.setDisabled(event.aggregate_id, false));
  return listener;
}
