// What the API answers, as zod schemas for the API description (app/http/openapi/route-docs.ts). Objects
// are open (new fields may appear); test/ops/openapi.test.ts checks live answers against them.
import { z } from 'zod';
import { targetStateSchema } from '../../../domain/device/events.ts';
import { metricGaugeNames } from '../../../domain/device/telemetry.ts';
import { storedEventRow } from '../../../domain/recorded-event.ts';
import { provisioningKeyView } from '../../../infra/devices/provisioning-key-store.ts';
import { LOG_LEVELS } from '../../../infra/telemetry/device-logs.ts';

const instant = z.string().describe('ISO-8601 instant, UTC');
const nullableInstant = instant.nullable();
const uuid = z.string().describe('uuid');
const open = z.record(z.string(), z.unknown());

/** Every error: `{"error": {code, message, details?}}`. */
export const errorResponse = z.object({
  error: z.object({
    code: z.string().describe('stable machine-readable code, e.g. invalid_request, unauthorized, device_not_found'),
    message: z.string().describe('what went wrong; for 400 it starts with the field, e.g. "body.deviceName: Required"'),
    details: z.unknown().optional().describe('for 400: every problem as {field, message}'),
  }),
});

/** How far a device's current state is from its target. */
export const driftResponse = z.object({
  in_sync: z.boolean(),
  apps_missing: z.array(z.string()),
  apps_extra: z.array(z.string()),
  services: z.array(open),
  config_differs: z.array(z.string()),
});

const versionedTarget = targetStateSchema.extend({ version: z.number().int(), updated_at: instant });
const currentState = z.object({
  apps: open,
  system: open,
  resources: open,
  config: open.optional(),
  update_status: z.string().optional(),
  reported_at: instant,
});

/** A device as the admin API shows it (the read model). */
export const deviceResponse = z.object({
  uuid,
  device_name: z.string(),
  device_type: z.string(),
  fleet_id: z.string(),
  is_active: z.boolean(),
  mac_address: z.string().nullable(),
  ip_address: z.string().nullable(),
  os_version: z.string().nullable(),
  supervisor_version: z.string().nullable(),
  provisioning_key_id: z.string().nullable(),
  application_id: z.union([z.number(), z.string()]).nullable().describe(
    "the device agent's applicationId at registration",
  ),
  agent_version: z.string().nullable().describe("the device agent's agentVersion at registration"),
  in_sync: z.boolean(),
  drift_since: nullableInstant,
  drift: driftResponse,
  target: versionedTarget.nullable(),
  current: currentState.nullable(),
  registered_at: instant,
  updated_at: instant,
  last_seen_at: nullableInstant,
  version: z.number().int().describe('events folded (the aggregate version)'),
});

/** One event row, every column. */
export const eventResponse = storedEventRow.extend({
  timestamp: instant,
  transaction_id: z.string().describe('the appending transaction (xid8), as text'),
  hash: z.string().describe('sha-256 chained to the previous event of the aggregate'),
});

/** Fields of a device-facing body devicetrail does not know: dropped, never stored (issue #15). */
const ignoredFields = z.array(z.string()).optional().describe(
  'the fields of the body devicetrail does not know (e.g. "body.<uuid>.is_online"): ignored, not stored; present only when there are any',
);

/** A device's MQTT credential: username (also its client id), password, and the broker to connect to. */
const mqttCredentials = z.object({
  username: z.string().nullable().describe('device_<uuid>; the client id must be the same'),
  password: z.string().nullable(),
  broker: z.string().nullable().describe('e.g. mqtt://host:1884 (MQTT_PUBLIC_URL)'),
});

/** POST /device/register: devicetrail's shape, and at the top level what the device agent reads. */
export const registerResponse = z.object({
  device: deviceResponse,
  created: z.boolean().describe('false: already registered with this key, nothing written'),
  id: uuid.describe("the device's id, for the device agent: its uuid"),
  uuid,
  deviceName: z.string().nullable(),
  deviceType: z.string().nullable(),
  applicationId: z.union([z.number(), z.string()]).nullable(),
  createdAt: nullableInstant,
  mqtt: mqttCredentials.describe(
    "the device's MQTT credential (issue #18): a new password on each registration, shown only here; nulls when MQTT is off",
  ),
  ignored_fields: ignoredFields,
});

/** POST /device/:uuid/key-exchange. */
export const keyExchangeResponse = z.object({
  status: z.literal('ok'),
  message: z.string(),
  device: z.object({ id: uuid, uuid, deviceName: z.string() }),
  mqtt: mqttCredentials.optional().describe(
    'only when the body asked for it (`reissueMqtt: true`): a new MQTT password, the previous one stops working',
  ),
  ignored_fields: ignoredFields,
});

/** GET /device/:uuid/state: the device agent's poll. */
export const agentPollResponse = z.record(
  z.string().describe("the device's uuid"),
  z.object({ apps: open, config: open, version: z.number().int().describe('the target version; 0 before any') }),
);

/** GET /device/:uuid/target-state. */
export const targetPollResponse = z.object({
  uuid,
  version: z.number().int().describe('0 before any target'),
  apps: open,
  config: open,
  updated_at: nullableInstant,
});

/** PATCH /device/state. */
export const reportResponse = z.object({
  events_written: z.number().int(),
  devices: z.record(
    z.string(),
    z.object({ version: z.number().int(), in_sync: z.boolean(), events_written: z.number().int() }),
  ),
  ignored_fields: ignoredFields,
});

/** POST /device/events. */
export const deviceEventsResponse = z.object({
  uuid,
  version: z.number().int(),
  events_written: z.number().int(),
  event_ids: z.array(uuid),
  /** The device.connection_restored appended first when the device was lost. */
  restored_event_id: uuid.nullable(),
  ignored_fields: ignoredFields,
});

/** POST /devices/:uuid/target-state. */
export const setTargetResponse = z.object({
  uuid,
  version: z.number().int(),
  event_id: uuid.nullable(),
  in_sync: z.boolean(),
});

/** PATCH /devices/:uuid/active. */
export const activeResponse = z.object({
  uuid,
  is_active: z.boolean(),
  changed: z.boolean(),
  event_type: z.enum(['device.online', 'device.offline']).nullable(),
  event_id: uuid.nullable(),
});

/** GET /devices. */
export const deviceListResponse = z.object({
  devices: z.array(deviceResponse),
  total: z.number().int(),
  limit: z.number().int(),
  offset: z.number().int(),
});

/** GET /devices/:uuid/events. */
export const eventListResponse = z.object({
  events: z.array(eventResponse),
  next_after_version: z.number().int().nullable().describe(
    'pass as after_version for the next page; null on the last page',
  ),
});

/** A provisioning key (never its secret). */
export const provisioningKeyResponse = provisioningKeyView;

/** POST /provisioning-keys: the key with its secret, shown only here. */
export const createdProvisioningKeyResponse = provisioningKeyView.extend({
  key: z.string().describe('the secret (dtp_…), shown once'),
});

/** DELETE /provisioning-keys/:id. */
export const revokedProvisioningKeyResponse = provisioningKeyView.extend({ changed: z.boolean() });

/** A webhook (never its secret). */
export const webhookResponse = z.object({
  id: uuid,
  url: z.string(),
  event_types: z.array(z.string()),
  description: z.string().nullable(),
  include_client_info: z.boolean().describe("whether deliveries carry the caller's IP address and user agent"),
  created_by: z.string(),
  created_at: instant,
  deleted_at: nullableInstant,
});

/** GET /webhooks/:id/deliveries. */
export const deliveriesResponse = z.object({
  deliveries: z.array(z.object({
    id: uuid,
    webhook_id: uuid,
    event_id: uuid,
    event_type: z.string(),
    status: z.enum(['pending', 'succeeded', 'failed', 'cancelled']),
    attempts: z.number().int(),
    next_attempt_at: nullableInstant,
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: instant,
    completed_at: nullableInstant,
    attempt_log: z.array(z.object({
      attempt: z.number().int(),
      attempted_at: instant,
      duration_ms: z.number(),
      status_code: z.number().int().nullable(),
      error: z.string().nullable(),
      response_body: z.string().nullable(),
    })),
  })),
  limit: z.number().int(),
  offset: z.number().int(),
});

/** GET /events: a page of the global feed. */
export const feedResponse = z.object({
  events: z.array(storedEventRow.omit({ transaction_id: true, hash: true })),
  next_cursor: z.string().describe('pass as `after` for the next page'),
  has_more: z.boolean(),
});

const counts = z.object({
  total: z.number().int(),
  active: z.number().int(),
  inactive: z.number().int(),
  in_sync: z.number().int(),
  drifting: z.number().int(),
});
const lag = z.object({
  events_behind: z.number().int(),
  seconds_behind: z.number(),
  oldest_pending_at: nullableInstant,
});

/** GET /fleet/summary. */
export const fleetSummaryResponse = z.object({
  fleet: z.string().optional(),
  totals: counts,
  fleets: z.array(
    counts.extend({ fleet_id: z.string(), device_types: z.array(counts.extend({ device_type: z.string() })) }),
  ),
  device_types: z.array(counts.extend({ device_type: z.string() })),
  projection: lag.extend({ name: z.string(), events_processed: z.number().int(), last_error: z.string().nullable() })
    .passthrough(),
  listeners: z.array(
    lag.extend({ name: z.string(), events_processed: z.number().int(), dead_letters: z.number().int() }).passthrough(),
  ),
});

/** GET /devices/:uuid/state: the folded state at an instant. */
export const replayStateResponse = deviceResponse.omit({ last_seen_at: true }).extend({
  at: instant,
  last_seen_at: nullableInstant,
  containers: open,
  images: open,
  volumes: open,
  networks: open,
  reconciliation: open.nullable(),
  connectivity: open,
  replay: z.object({ events_folded: z.number().int(), snapshot_version: z.number().int().nullable() }),
}).passthrough();

const eventRef = z.object({
  event_id: uuid,
  event_type: z.string(),
  version: z.number().int(),
  timestamp: instant,
  actor: z.string(),
});

/** GET /devices/:uuid/drift: out-of-sync intervals over a period. */
export const replayDriftResponse = z.object({
  uuid,
  device_name: z.string(),
  since: nullableInstant,
  until: instant,
  in_sync_at_end: z.boolean(),
  intervals: z.array(
    z.object({
      start: instant,
      end: nullableInstant,
      ongoing: z.boolean(),
      duration_ms: z.number(),
      target_version: z.number().int().nullable(),
      differed: open,
      started_by: eventRef,
      ended_by: eventRef.nullable(),
    }).passthrough(),
  ),
  reconciliations: z.array(open),
  totals: z.object({
    intervals: z.number().int(),
    out_of_sync_ms: z.number(),
    longest_ms: z.number(),
    window_ms: z.number().nullable(),
  }),
});

/** GET /devices/:uuid/diff: what changed between two instants. */
export const replayDiffResponse = z.object({
  uuid,
  device_name: z.string(),
  from: instant,
  to: instant,
  summary: open,
  changes: z.array(
    z.object({
      path: z.string(),
      before: z.unknown().optional(),
      after: z.unknown().optional(),
      caused_by: z.array(eventRef),
    }),
  ),
  events: z.array(eventRef.extend({ changed: z.array(z.string()) })),
});

/** GET /fleet/status: every device's sync state at an instant. */
export const fleetStatusResponse = z.object({
  at: instant,
  fleet: z.string().nullable(),
  devices: z.array(
    z.object({
      uuid,
      device_name: z.string(),
      fleet_id: z.string(),
      is_active: z.boolean(),
      in_sync: z.boolean().nullable(),
    }).passthrough(),
  ),
  totals: z.object({ devices: z.number().int(), in_sync: z.number().int(), out_of_sync: z.number().int() })
    .passthrough(),
});

const analyticsWindow = z.object({ from: instant, to: instant, duration_ms: z.number() });
const activity = z.object({
  total: z.number().int(),
  devices: z.number().int(),
  per_hour: z.number(),
  top: z.array(
    z.object({
      uuid,
      count: z.number().int(),
      first: instant,
      last: instant,
      device_name: z.string().nullable(),
      per_hour: z.number(),
    }),
  ),
});
const durationStats = z.object({
  p50: z.number().nullable(),
  p90: z.number().nullable(),
  p99: z.number().nullable(),
  max: z.number().nullable(),
});
const transportStats = z.object({
  delivered: z.number().int(),
  delivery_ms: durationStats,
  converged: z.number().int(),
  convergence_ms: durationStats,
});
const reconciliationStats = z.object({
  targets: z.number().int(),
  converged: z.number().int(),
  pending: z.number().int(),
  superseded: z.number().int(),
  delay_ms: open.nullable(),
  /** Per transport (issue #18): target update → first delivery over it, and → the converging report that came over it. */
  by_transport: z.object({ http: transportStats, mqtt: transportStats }),
  slowest: z.array(open),
  waiting: z.array(open),
});
const driftingNow = z.object({ as_of: instant, count: z.number().int(), devices: z.array(open) });

/** GET /analytics: the seed's questions over a window. */
export const analyticsResponse = z.object({
  window: analyticsWindow,
  target_changes: activity,
  reports: activity,
  reconciliation: reconciliationStats,
  drifting_now: driftingNow,
});

/** GET /analytics/target-changes and /analytics/reports. */
export const activityResponse = activity.extend({ window: analyticsWindow });

/** GET /analytics/reconciliation. */
export const reconciliationResponse = reconciliationStats.extend({ window: analyticsWindow });

/** GET /analytics/drifting. */
export const driftingResponse = driftingNow;

/** GET /healthz. */
export const healthResponse = z.object({ status: z.literal('ok'), uptime_s: z.number().int() });

const check = z.object({ ok: z.boolean() }).passthrough();

/** GET /readyz (200 and 503 alike). */
export const readyResponse = z.object({
  status: z.enum(['ready', 'not_ready', 'draining']),
  checks: z.object({ database: check, migrations: check, partitions: check }).partial(),
});

/** GET /listeners (issue #17). */
export const listenersResponse = z.object({
  listeners: z.array(z.object({
    name: z.string(),
    owner: z.string().nullable(),
    owner_since: nullableInstant,
    events_processed: z.number(),
    last_event_at: nullableInstant,
    updated_at: instant,
    dead_letters: z.number().describe('open (dead or queued for redelivery)'),
    events_behind: z.number(),
    seconds_behind: z.number(),
    oldest_pending_at: nullableInstant,
  })),
});

/** GET /dead-letters. */
export const deadLettersResponse = z.object({
  dead_letters: z.array(z.object({
    id: z.number(),
    listener_name: z.string(),
    event_id: uuid,
    event_type: z.string(),
    aggregate_type: z.string(),
    aggregate_id: z.string(),
    global_position: z.number(),
    event: open.describe('the event as it was handed to the handlers'),
    error: z.string(),
    attempts: z.number(),
    status: z.enum(['dead', 'redeliver', 'redelivered', 'discarded']),
    first_failed_at: instant,
    last_failed_at: instant,
    resolved_at: nullableInstant,
  })),
});

/** POST /dead-letters/redeliver. */
export const redeliveredResponse = z.object({ requested: z.number().describe('letters queued for redelivery') });

/** POST /dead-letters/discard. */
export const discardedResponse = z.object({ discarded: z.number() });

/** GET /partitions. */
export const partitionsResponse = z.object({
  retention_days: z.number().describe('RETENTION_DAYS; 0 keeps everything'),
  recorded_horizon: nullableInstant.describe('how far retention has dropped history; null before the first drop'),
  target_horizon: nullableInstant.describe('the horizon RETENTION_DAYS gives today'),
  partitions: z.array(z.object({
    name: z.string(),
    day: z.string(),
    from: instant,
    to: instant,
    bytes: z.number(),
    rows: z.number(),
    due: z.boolean().describe('entirely before the target horizon: the next retention run drops it'),
  })),
  totals: z.object({ partitions: z.number(), rows: z.number(), bytes: z.number(), due: z.number() }),
});

/** One hash-chain check. */
export const integrityCheck = z.object({
  id: z.number(),
  started_at: instant,
  finished_at: nullableInstant,
  status: z.enum(['running', 'passed', 'failed', 'error']),
  started_by: z.string().describe('the admin token id'),
  aggregates: z.number().nullable(),
  events: z.number().nullable(),
  breaks: z.array(open).nullable().describe("each broken chain's first bad link: aggregate, version, reason, message"),
  error: z.string().nullable(),
});

/** GET /integrity/checks. */
export const integrityChecksResponse = z.object({ checks: z.array(integrityCheck) });

/** POST /integrity/checks. */
export const integrityCheckRunResponse = z.object({
  check: integrityCheck,
  started: z.boolean().describe('false: a check was already running, and this is it'),
});

/** POST and GET /console/session. */
export const consoleSessionResponse = z.object({
  admin: z.object({ id: uuid, name: z.string() }),
  signed_in_with: z.enum(['console_session', 'admin_token']).optional(),
  expires_at: nullableInstant,
});

/** POST /device/:uuid/logs. */
export const logUploadResponse = z.object({
  uuid,
  stored: z.number().int().describe('lines stored'),
  truncated: z.number().int().describe('lines whose message was cut to 16,384 characters'),
  ignored_fields: ignoredFields,
});

const gaugeStats = z.object({ avg: z.number(), min: z.number(), max: z.number() }).nullable()
  .describe('mean, least and greatest of the samples in the bucket; null when none had this gauge');

/** GET /devices/:uuid/metrics. */
export const metricsSeriesResponse = z.object({
  uuid,
  since: instant,
  until: instant,
  step: z.string().describe('the bucket width, e.g. 5m'),
  step_ms: z.number().int(),
  points: z.array(
    z.object({
      t: instant.describe("the bucket's start (buckets are counted from since)"),
      samples: z.number().int(),
      ...Object.fromEntries(metricGaugeNames.map((name) => [name, gaugeStats])),
    }),
  ).describe('buckets with at least one sample, oldest first'),
  latest: z.object({
    reported_at: instant,
    ...Object.fromEntries(metricGaugeNames.map((name) => [name, z.number().nullable()])),
    top_processes: z.array(open).nullable(),
    network_interfaces: z.array(open).nullable(),
  }).nullable().describe('the last sample at or before until, whole (with the process and network tables)'),
});

/** One stored device log line. */
export const logLine = z.object({
  id: z.number().int(),
  timestamp: instant.describe(
    "the device's time of the line (the arrival time when it sent none or an implausible one)",
  ),
  received_at: instant,
  level: z.enum(LOG_LEVELS),
  message: z.string(),
  service_name: z.string().nullable(),
  service_id: z.number().int().nullable(),
  container_id: z.string().nullable(),
  source: z.object({ type: z.string().nullable(), name: z.string().nullable() }),
  is_stderr: z.boolean(),
  is_system: z.boolean(),
  truncated: z.boolean(),
});

/** GET /devices/:uuid/logs. */
export const deviceLogsResponse = z.object({
  uuid,
  since: instant,
  until: instant,
  logs: z.array(logLine),
  next_cursor: z.string().nullable().describe('pass as `after` for the next page; null on the last page'),
});

/** A secret marker (README "Secrets"). */
const secretMarker = z.string().describe('hmac-sha256:<8 hex key id>:<64 hex>');

/** GET /devices/:uuid/secrets. */
export const deviceSecretsResponse = z.object({
  uuid,
  target_version: z.number().int(),
  key_id: z.string().describe('the id of the key markers are made with now'),
  secrets: z.array(z.object({
    app_id: z.string().nullable().describe('null for a config key'),
    service_name: z.string().nullable(),
    name: z.string().describe('the environment variable or config key'),
    target: secretMarker,
    reported: secretMarker.nullable().describe('what the device reported for it; null: nothing'),
    matched: z.boolean(),
    status: z.enum(['kept', 'erased', 'missing']).describe(
      'missing: the value was never kept (set under another key?)',
    ),
    erased_at: instant.nullable(),
  })),
});

/** DELETE /secrets/:hash. */
export const erasedSecretResponse = z.object({
  hash: secretMarker,
  status: z.literal('erased'),
  created_at: instant,
  updated_at: instant,
  erased_at: instant,
});
