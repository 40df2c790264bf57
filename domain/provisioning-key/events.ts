// Provisioning key events (aggregate_type `provisioning_key`).
import { z } from 'zod';

export const provisioningKeyCreatedData = z.object({
  fleet_id: z.string(),
  description: z.string().nullable(),
  expires_at: z.string().nullable(),
  max_devices: z.number().int().positive().nullable(),
});

export const provisioningKeyRevokedData = z.object({
  reason: z.string().nullable(),
});

/** Every provisioning key event type with the schema of its data. */
export const provisioningKeyEventSchemas = {
  'provisioning_key.created': provisioningKeyCreatedData,
  'provisioning_key.revoked': provisioningKeyRevokedData,
} as const;

export type ProvisioningKeyEvent =
  | { type: 'provisioning_key.created'; data: z.infer<typeof provisioningKeyCreatedData>; timestamp: string }
  | { type: 'provisioning_key.revoked'; data: z.infer<typeof provisioningKeyRevokedData>; timestamp: string };
