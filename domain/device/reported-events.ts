// Lifecycle events a device may send about itself (POST /api/v1/device/events): which
// types, and the input schema of each type's data, normalised to the stored shape. Fields a
// schema does not name are dropped (and named in the answer), never stored.
// Reconciliation and connectivity are the server's judgement, never the device's.
import { z } from 'zod';
import type { DeviceEventOf } from './events.ts';

/** The event types a device may send. */
export const deviceReportableTypes = [
  'container.started',
  'container.stopped',
  'container.crashed',
  'image.pulled',
  'image.pull_failed',
  'volume.created',
  'volume.removed',
  'network.created',
  'network.removed',
] as const;

/** A type a device may send. */
export type DeviceReportableType = (typeof deviceReportableTypes)[number];

/** A validated event as a device sent it, data already in the stored shape. */
export type DeviceReportedEvent = {
  [T in DeviceReportableType]: { type: T; data: DeviceEventOf<T>['data'] };
}[DeviceReportableType];

const appId = z.union([z.string().min(1).max(64), z.number().int().nonnegative()]).transform(String);
const serviceName = z.string().min(1).max(128);
const image = z.string().min(1).max(512);

const containerInput = z.object({
  app_id: appId,
  service_name: serviceName,
  container_id: z.string().min(1).max(128).optional(),
  image: image.optional(),
  status: z.string().min(1).max(64).optional(),
  exit_code: z.number().int().optional(),
  restart_count: z.number().int().nonnegative().optional(),
}).transform((d) => ({
  app_id: d.app_id,
  service_name: d.service_name,
  container_id: d.container_id ?? null,
  image: d.image ?? null,
  status: d.status ?? null,
  exit_code: d.exit_code ?? null,
  restart_count: d.restart_count ?? null,
}));

const imagePulledInput = z.object({
  app_id: appId,
  service_name: serviceName,
  image,
  previous_image: image.optional(),
}).transform((d) => ({
  app_id: d.app_id,
  service_name: d.service_name,
  image: d.image,
  previous_image: d.previous_image ?? null,
}));

const imagePullFailedInput = z.object({
  app_id: appId,
  service_name: serviceName,
  image: image.optional(),
  error: z.string().min(1).max(2048),
}).transform((d) => ({
  app_id: d.app_id,
  service_name: d.service_name,
  image: d.image ?? null,
  error: d.error,
}));

const namedInput = z.object({ app_id: appId, name: z.string().min(1).max(256) });

/** Input schema of each device-reportable type's data. */
export const deviceReportedDataSchemas = {
  'container.started': containerInput,
  'container.stopped': containerInput,
  'container.crashed': containerInput,
  'image.pulled': imagePulledInput,
  'image.pull_failed': imagePullFailedInput,
  'volume.created': namedInput,
  'volume.removed': namedInput,
  'network.created': namedInput,
  'network.removed': namedInput,
} as const satisfies Record<DeviceReportableType, z.ZodTypeAny>;

/** True when a device may send events of this type. */
export function isDeviceReportableType(type: string): type is DeviceReportableType {
  return Object.hasOwn(deviceReportedDataSchemas, type);
}
