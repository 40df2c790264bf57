// Device events: one zod schema per event's data, and the union the fold reads.
import { z } from 'zod';

const jsonRecord = z.record(z.string(), z.unknown());

/** A service the target says an app must run. Unknown keys are kept. */
export const targetServiceSchema = z
  .object({
    serviceName: z.string().min(1).max(128),
    serviceId: z.number().int().optional(),
    image: z.string().min(1).max(512).optional(),
    releaseId: z.union([z.number().int(), z.string().max(128)]).optional(),
    commit: z.string().max(128).optional(),
  })
  .passthrough();

/** One app of a target state, keyed by app id in `apps`. */
export const targetAppSchema = z
  .object({
    appId: z.number().int().optional(),
    appName: z.string().max(256).optional(),
    releaseId: z.union([z.number().int(), z.string().max(128)]).optional(),
    commit: z.string().max(128).optional(),
    services: z.array(targetServiceSchema).max(100).optional(),
  })
  .passthrough();

/** What an admin says a device should run. */
export const targetStateSchema = z.object({
  apps: z.record(z.string().min(1).max(64), targetAppSchema),
  config: z.record(z.string().min(1).max(128), z.unknown()),
});

/** A service as a device reports it (issue #5 shape; all optional). */
export const reportedServiceSchema = z
  .object({
    status: z.string().max(64).optional(),
    containerId: z.string().max(128).optional(),
    image: z.string().max(512).optional(),
    exitCode: z.number().int().optional(),
    restartCount: z.number().int().nonnegative().optional(),
    downloadProgress: z.number().min(0).max(100).optional(),
    imagePullError: z.string().max(2048).optional(),
  })
  .passthrough();

/** An app as a device reports it: the seed's `{status, containerId}` and richer forms. */
export const reportedAppSchema = z
  .object({
    status: z.string().max(64).optional(),
    containerId: z.string().max(128).optional(),
    image: z.string().max(512).optional(),
    releaseId: z.union([z.number().int(), z.string().max(128)]).optional(),
    commit: z.string().max(128).optional(),
    services: z.record(z.string().min(1).max(128), reportedServiceSchema).optional(),
    volumes: z.array(z.string().max(256)).max(100).optional(),
    networks: z.array(z.string().max(256)).max(100).optional(),
  })
  .passthrough();

export type TargetState = z.infer<typeof targetStateSchema>;
export type TargetApp = z.infer<typeof targetAppSchema>;
export type ReportedApp = z.infer<typeof reportedAppSchema>;
export type ReportedService = z.infer<typeof reportedServiceSchema>;

/** System fields a report may carry; they merge into `current.system`. */
export const systemFieldNames = [
  'ip_address', 'mac_address', 'os_version', 'os_variant', 'supervisor_version',
  'uptime', 'hostname', 'local_ip', 'public_ip',
] as const;
/** Resource gauges a report may carry; they merge into `current.resources`. */
export const resourceFieldNames = [
  'cpu_usage', 'cpu_temp', 'memory_usage', 'memory_total', 'storage_usage',
  'storage_total', 'temperature',
] as const;

export const deviceProvisionedData = z.object({
  device_name: z.string(),
  device_type: z.string(),
  fleet_id: z.string(),
  ip_address: z.string().nullable(),
  mac_address: z.string().nullable(),
  os_version: z.string().nullable(),
  supervisor_version: z.string().nullable(),
  provisioning_key_id: z.string(),
});

export const targetStateUpdatedData = z.object({
  version: z.number().int().positive(),
  new_state: targetStateSchema,
  old_state: targetStateSchema.nullable(),
  apps_added: z.array(z.string()),
  apps_removed: z.array(z.string()),
  apps_count: z.number().int().nonnegative(),
});

export const currentStateUpdatedData = z.object({
  apps: z.record(z.string(), reportedAppSchema).optional(),
  system: z.record(z.string(), z.union([z.string(), z.number(), z.null()])),
  resources: z.record(z.string(), z.union([z.number(), z.null()])),
  config: jsonRecord.optional(),
  update_status: z.string().optional(),
  apps_count: z.number().int().nonnegative(),
});

const activeChangeData = z.object({
  device_name: z.string(),
  device_type: z.string(),
  previous_state: z.enum(['active', 'inactive']),
  new_state: z.enum(['active', 'inactive']),
  reason: z.string().nullable(),
  changed_at: z.string(),
});
export const deviceOnlineData = activeChangeData;
export const deviceOfflineData = activeChangeData;

/** Every device event type with the schema of its data. */
export const deviceEventSchemas = {
  'device.provisioned': deviceProvisionedData,
  'target_state.updated': targetStateUpdatedData,
  'current_state.updated': currentStateUpdatedData,
  'device.online': deviceOnlineData,
  'device.offline': deviceOfflineData,
} as const;

export type DeviceEventType = keyof typeof deviceEventSchemas;

type EventOf<T extends DeviceEventType> = {
  type: T;
  data: z.infer<(typeof deviceEventSchemas)[T]>;
  /** ISO-8601 instant the event happened (the command's `now`). */
  timestamp: string;
};

/** A device event as the fold sees it. */
export type DeviceEvent = { [T in DeviceEventType]: EventOf<T> }[DeviceEventType];

/** True when `type` names a device event this domain knows. */
export function isDeviceEventType(type: string): type is DeviceEventType {
  return Object.hasOwn(deviceEventSchemas, type);
}

/** Validates an event read from storage or a fixture; throws on a bad shape. */
export function parseDeviceEvent(raw: { type: string; data: unknown; timestamp: string }): DeviceEvent {
  if (!isDeviceEventType(raw.type)) throw new Error(`unknown device event type "${raw.type}"`);
  const data = deviceEventSchemas[raw.type].parse(raw.data);
  return { type: raw.type, data, timestamp: raw.timestamp } as DeviceEvent;
}
