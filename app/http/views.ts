// Response shapes: what the API shows of devices and events.
import { noDrift } from '../../domain/device/drift.ts';
import type { DeviceRow } from '../../infra/devices/device-queries.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';

/** A device as the admin API shows it: identity, flags, target, current, drift. */
export function deviceView(row: DeviceRow) {
  const state = row.state;
  const registered = state.status === 'registered' ? state : null;
  return {
    uuid: row.uuid,
    device_name: row.device_name,
    device_type: row.device_type,
    fleet_id: row.fleet_id,
    is_active: row.is_active,
    mac_address: registered?.mac_address ?? null,
    ip_address: registered?.ip_address ?? null,
    os_version: registered?.os_version ?? null,
    supervisor_version: registered?.supervisor_version ?? null,
    provisioning_key_id: registered?.provisioning_key_id ?? null,
    application_id: registered?.application_id ?? null,
    agent_version: registered?.agent_version ?? null,
    in_sync: row.in_sync,
    drift_since: row.drift_since,
    drift: registered?.drift ?? noDrift(),
    target: registered?.target ?? null,
    current: registered?.current ?? null,
    containers: registered?.containers ?? {},
    images: registered?.images ?? {},
    volumes: registered?.volumes ?? {},
    networks: registered?.networks ?? {},
    reconciliation: registered?.reconciliation ?? null,
    connectivity: registered?.connectivity ?? null,
    registered_at: row.registered_at,
    updated_at: row.updated_at,
    last_seen_at: row.last_seen_at,
    version: row.version,
  };
}

/** An event row as the API shows it (every column). */
export const eventView = (event: StoredEvent) => event;
