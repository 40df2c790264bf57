// The MQTT topics devicetrail speaks (issue #18), as the device agent of dsamborschi/
// zemfyre-sensor uses them: everything of one device lives under `iot/device/<uuid>/`, its
// state reports go to `iot/device/<uuid>/state` (QoS 1), its jobs under `…/jobs/…`. Devices
// connect as `device_<uuid>` with that same client id. The server owns two topics of each
// device: `…/target` (a retained notice of the newest target) and `…/state/rejected` (why a
// report was refused); a device may read them but not write them.

const ROOT = 'iot/device/';

/** Where a device publishes its state reports. */
export const stateTopic = (uuid: string): string => `${ROOT}${uuid}/state`;

/** Where devicetrail says why a state report was refused. */
export const rejectedTopic = (uuid: string): string => `${ROOT}${uuid}/state/rejected`;

/** Where devicetrail publishes (retained) the device's newest target version. */
export const targetTopic = (uuid: string): string => `${ROOT}${uuid}/target`;

/** The share group every devicetrail instance joins at an external broker. */
export const SHARE_GROUP = 'devicetrail';

/** Every device's state reports, split among the instances of the share group. */
export const SHARED_STATE_SUBSCRIPTION = `$share/${SHARE_GROUP}/${ROOT}+/state`;

/** A device's MQTT username, which is also the client id it must connect with. */
export const mqttUsername = (uuid: string): string => `device_${uuid}`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The device of a `device_<uuid>` username (lower-case uuid, as registration stores it), or null. */
export function uuidOfUsername(username: string): string | null {
  if (!username.startsWith('device_')) return null;
  const uuid = username.slice('device_'.length);
  return UUID.test(uuid) ? uuid : null;
}

/** The device whose state topic this is (`iot/device/<uuid>/state` exactly), or null. */
export function uuidOfStateTopic(topic: string): string | null {
  if (!topic.startsWith(ROOT) || !topic.endsWith('/state')) return null;
  const uuid = topic.slice(ROOT.length, -'/state'.length);
  return UUID.test(uuid) ? uuid : null;
}

/** Whether `topic` is the device's own: `iot/device/<uuid>` or under it. */
function own(uuid: string, topic: string): boolean {
  const prefix = `${ROOT}${uuid}`;
  return topic === prefix || topic.startsWith(`${prefix}/`);
}

/** Whether device `uuid` may publish to `topic`: its own topics, except the two devicetrail writes. */
export function devicePublishAllowed(uuid: string, topic: string): boolean {
  return own(uuid, topic) && topic !== targetTopic(uuid) && topic !== rejectedTopic(uuid);
}

/**
 * Whether device `uuid` may subscribe with `filter`: only its own topics, with wildcards only
 * below its uuid (`iot/device/<uuid>/#` yes; `iot/device/+/state`, `#`, `$share/…` no).
 */
export function deviceSubscribeAllowed(uuid: string, filter: string): boolean {
  return own(uuid, filter);
}
