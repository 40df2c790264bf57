// Device events: one zod schema per event's data, and the union the fold reads.
import { z } from 'zod';

const jsonRecord = z.record(z.string(), z.unknown());

/**
 * A service the target says an app must run. Unknown keys are kept (a target is the device's
 * whole service spec: `config`, `environment`, ports…). The device agent names the image
 * `imageName`: it means `image` (imageOf in services.ts), and the admin edge checks it.
 */
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

/**
 * A service as stored in `current_state.updated` (issue #5 shape; all optional). Reads keep
 * keys this schema does not name: events appended before the HTTP edge dropped unknown fields
 * (issue #15) may carry any. The fields a device may send today, with their types, are the
 * edge's (app/http/device-reports.ts); `imageName` means `image` (imageOf in services.ts).
 */
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

/** An app as stored: the seed's `{status, containerId}` and richer forms (read as services are). */
export const reportedAppSchema = z
  .object({
    status: z.string().max(64).optional(),
    containerId: z.string().max(128).optional(),
    image: z.string().max(512).optional(),
    releaseId: z.union([z.number().int(), z.string().max(128)]).optional(),
    commit: z.string().max(128).optional(),
    // an app without `services` is one service named after the app, and may carry its fields
    exitCode: z.number().int().optional(),
    restartCount: z.number().int().nonnegative().optional(),
    downloadProgress: z.number().min(0).max(100).optional(),
    imagePullError: z.string().max(2048).optional(),
    services: z.record(z.string().min(1).max(128), reportedServiceSchema).optional(),
    volumes: z.array(z.string().max(256)).max(100).optional(),
    networks: z.array(z.string().max(256)).max(100).optional(),
  })
  .passthrough();

export type TargetState = z.infer<typeof targetStateSchema>;
export type TargetApp = z.infer<typeof targetAppSchema>;
export type ReportedApp = z.infer<typeof reportedAppSchema>;
export type ReportedService = z.infer<typeof reportedServiceSchema>;

/** What one state report says, sorted into the buckets the fold merges. */
export type StateReport = {
  apps?: Record<string, ReportedApp> | undefined;
  system: Record<string, string | number | null>;
  resources: Record<string, number | null>;
  config?: Record<string, unknown> | undefined;
  update_status?: string | undefined;
};

/** System fields a report may carry; they merge into `current.system`. */
export const systemFieldNames = [
  'ip_address',
  'mac_address',
  'os_version',
  'os_variant',
  'supervisor_version',
  'agent_version',
  'uptime',
  'hostname',
  'local_ip',
  'public_ip',
] as const;
/** Resource gauges a report may carry; they merge into `current.resources`. */
export const resourceFieldNames = [
  'cpu_usage',
  'cpu_temp',
  'memory_usage',
  'memory_total',
  'storage_usage',
  'storage_total',
  'temperature',
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
  // since issue #15 (the device agent); absent in older events, null when the device sent none
  /** The fleet application the device says it belongs to (the agent's `applicationId`). */
  application_id: z.union([z.number().int(), z.string()]).nullable().optional(),
  /** The device agent's version (`agentVersion`). */
  agent_version: z.string().nullable().optional(),
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

// Lifecycle events (issue #5). `observed_at` is set only on events a device sent itself
// (POST /device/events): when the device says it happened; `timestamp` is when it arrived.
const observedAt = z.string().optional();

/** container.started / .stopped / .crashed: one service's container changed state. */
export const containerEventData = z.object({
  app_id: z.string(),
  service_name: z.string(),
  container_id: z.string().nullable(),
  image: z.string().nullable(),
  /** The status reported; `removed` (the service left the report) or `replaced` (a new container took over) when derived. */
  status: z.string().nullable(),
  exit_code: z.number().int().nullable(),
  restart_count: z.number().int().nonnegative().nullable(),
  observed_at: observedAt,
});
export const containerStartedData = containerEventData;
export const containerStoppedData = containerEventData;
export const containerCrashedData = containerEventData;

/** image.pulled: a service's image is on the device (download reached 100%, or it runs a new image). */
export const imagePulledData = z.object({
  app_id: z.string(),
  service_name: z.string(),
  image: z.string().nullable(),
  previous_image: z.string().nullable(),
  observed_at: observedAt,
});

/** image.pull_failed: the device reported an error pulling a service's image. */
export const imagePullFailedData = z.object({
  app_id: z.string(),
  service_name: z.string(),
  image: z.string().nullable(),
  error: z.string(),
  observed_at: observedAt,
});

/** volume.created / .removed, network.created / .removed: a named resource of an app. */
export const appResourceEventData = z.object({
  app_id: z.string(),
  name: z.string(),
  observed_at: observedAt,
});
export const volumeCreatedData = appResourceEventData;
export const volumeRemovedData = appResourceEventData;
export const networkCreatedData = appResourceEventData;
export const networkRemovedData = appResourceEventData;

/** One service that differs from the target (as in drift). */
export const serviceDriftSchema = z.object({
  app_id: z.string(),
  service_name: z.string(),
  problem: z.enum(['not_running', 'missing', 'wrong_image', 'wrong_release', 'wrong_environment']),
  expected: z.string().optional(),
  actual: z.string().optional(),
});

/** reconciliation.started: a target update left the device out of sync; what differs. */
export const reconciliationStartedData = z.object({
  target_version: z.number().int().positive(),
  apps_missing: z.array(z.string()),
  apps_extra: z.array(z.string()),
  services: z.array(serviceDriftSchema),
  config_differs: z.array(z.string()),
});

/** reconciliation.completed: the first report in sync with the target version. */
export const reconciliationCompletedData = z.object({
  target_version: z.number().int().positive(),
  started_at: z.string(),
  duration_ms: z.number().int().nonnegative(),
});

/** Why a reconciliation failed. */
export const reconciliationFailureReasons = [
  'timeout',
  'superseded',
  'update_failed',
  'update_rejected',
  'update_aborted',
] as const;

/** reconciliation.failed: the device gave up, a newer target superseded it, or the deadline passed. */
export const reconciliationFailedData = z.object({
  target_version: z.number().int().positive(),
  started_at: z.string(),
  duration_ms: z.number().int().nonnegative(),
  reason: z.enum(reconciliationFailureReasons),
  /** The update_status the device reported (update_* reasons). */
  update_status: z.string().optional(),
  /** The target version that replaced this one (reason `superseded`). */
  superseded_by: z.number().int().positive().optional(),
  /** The RECONCILIATION_TIMEOUT in force (reason `timeout`). */
  timeout_ms: z.number().int().positive().optional(),
});

/** device.connection_lost: no authenticated device call for the connectivity timeout. */
export const connectionLostData = z.object({
  last_seen_at: z.string(),
  silent_ms: z.number().int().nonnegative(),
  timeout_ms: z.number().int().positive(),
});

/** device.connection_restored: the first call after a loss, with the whole silence. */
export const connectionRestoredData = z.object({
  last_seen_at: z.string(),
  lost_at: z.string(),
  silent_ms: z.number().int().nonnegative(),
});

/** Every device event type with the schema of its data. */
export const deviceEventSchemas = {
  'device.provisioned': deviceProvisionedData,
  'target_state.updated': targetStateUpdatedData,
  'current_state.updated': currentStateUpdatedData,
  'device.online': deviceOnlineData,
  'device.offline': deviceOfflineData,
  'container.started': containerStartedData,
  'container.stopped': containerStoppedData,
  'container.crashed': containerCrashedData,
  'image.pulled': imagePulledData,
  'image.pull_failed': imagePullFailedData,
  'volume.created': volumeCreatedData,
  'volume.removed': volumeRemovedData,
  'network.created': networkCreatedData,
  'network.removed': networkRemovedData,
  'reconciliation.started': reconciliationStartedData,
  'reconciliation.completed': reconciliationCompletedData,
  'reconciliation.failed': reconciliationFailedData,
  'device.connection_lost': connectionLostData,
  'device.connection_restored': connectionRestoredData,
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

/** The device event of one type. */
export type DeviceEventOf<T extends DeviceEventType> = EventOf<T>;

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
