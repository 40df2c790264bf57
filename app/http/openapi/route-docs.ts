// The API description, one declaration per route: its credentials and the zod schemas the
// handler itself validates with (request bodies and query strings come from the route
// modules, never copied), plus the answers (app/http/openapi/response-schemas.ts). app/http/openapi/openapi.ts turns
// this into OpenAPI 3.1; test/ops/openapi.test.ts fails when a registered route has no
// declaration here or a declaration has no route.
import type { ZodTypeAny } from 'zod';
import { z } from 'zod';
import { activeBody, deviceListQuery, eventListQuery, targetBody } from '../routes/admin-devices.ts';
import { deviceEventsBody, keyExchangeBody, registerBody } from '../routes/device.ts';
import { reportBody } from '../device-reports.ts';
import { feedQuery, streamQuery } from '../routes/feed.ts';
import { fleetSummaryQuery } from '../routes/fleet.ts';
import { createKeyBody, revokeKeyBody } from '../routes/provisioning-keys.ts';
import { analyticsQuery, diffQuery, fleetQuery, rangeQuery, stateQuery, timelineQuery } from '../routes/replay.ts';
import * as r from './response-schemas.ts';
import {
  analyticsPageQuery,
  assetQuery,
  devicePageQuery,
  emptyPageQuery,
  fleetPageQuery,
  listenersPageQuery,
  liveEventsPageQuery,
  signInQuery,
  webhookPageQuery,
} from '../routes/console-pages.ts';
import { checksQuery } from '../routes/integrity.ts';
import { deadLetterQuery, deadLetterSelectionBody } from '../routes/listeners.ts';
import { deliveriesQuery, listQuery as webhookListQuery, webhookBody } from '../routes/webhooks.ts';
import { logUploadBody } from '../routes/device-logs.ts';
import { logsQuery, logStreamQuery, metricsQuery } from '../routes/telemetry.ts';

/** Who may call a route. `metrics`: an admin token or METRICS_TOKEN. */
export type RouteAuth = 'admin' | 'device' | 'provisioning_key' | 'metrics' | 'none';

/** One documented answer. */
export type DocResponse = {
  description: string;
  schema?: ZodTypeAny;
  contentType?: string;
  headers?: Record<string, string>;
};

/** One route's documentation. `path` is the Koa pattern (`/api/v1/devices/:uuid`). */
export type RouteDoc = {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  tag: string;
  summary: string;
  description?: string;
  auth: RouteAuth;
  /** Path parameter schemas; a parameter not listed is a uuid. */
  params?: Record<string, ZodTypeAny>;
  query?: ZodTypeAny;
  /** Descriptions of query parameters, by name. */
  queryHelp?: Record<string, string>;
  headers?: { name: string; description: string }[];
  body?: ZodTypeAny;
  bodyOptional?: boolean;
  responses: Record<number, DocResponse>;
  /** Error statuses besides the ones every route of its kind has (400, 401, 403, 413, 415, 429, 503). */
  errors?: number[];
  /** When the one derived from the path would collide (the console's pages mirror API paths). */
  operationId?: string;
};

const json = (description: string, schema: ZodTypeAny): DocResponse => ({ description, schema });
const instantHelp = 'ISO-8601 instant with a time zone, e.g. 2026-11-27T10:00:00Z';
const analyticsHelp = {
  window: 'look-back window: a duration such as 90s, 15m, 24h, 7d (default 24h)',
  top: 'how many devices to list (default 10)',
};

/** Every route of the service. */
export const routeDocs: readonly RouteDoc[] = [
  // --- devices
  {
    method: 'POST',
    path: '/api/v1/device/register',
    tag: 'Devices',
    auth: 'provisioning_key',
    summary: 'Register a device',
    description:
      "Registers the device in the provisioning key's fleet (event `device.provisioned`). The same uuid again with the same `deviceApiKey`: 200, nothing written; with another key, or a key another device has: 409 `registration_conflict`, one body whichever it is (it counts as a failed authentication of that key). The answer also carries, at the top level, what the device agent reads (`id`, `mqtt`…). Fields devicetrail does not know are ignored and listed in `ignored_fields`.",
    body: registerBody,
    responses: {
      201: json('registered', r.registerResponse),
      200: json('already registered with this key; nothing written', r.registerResponse),
    },
    errors: [409],
  },
  {
    method: 'GET',
    path: '/api/v1/device/:uuid/target-state',
    tag: 'Devices',
    auth: 'device',
    summary: 'Poll the target state',
    description:
      'What the device should run, with its secret values (README "Secrets"): an environment variable or config key whose value an admin erased is left out. Counts as a heartbeat. `ETag` is the target version (followed by `.e<8 hex>` once a value of the target is erased); `If-None-Match` with it → 304.',
    headers: [{ name: 'If-None-Match', description: 'the ETag of the target the device has, e.g. "3"' }],
    responses: {
      200: { ...json('the target', r.targetPollResponse), headers: { ETag: 'the target version, quoted' } },
      304: { description: 'unchanged since the ETag given' },
    },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/device/:uuid/state',
    tag: 'Devices',
    auth: 'device',
    summary: "Poll the target state (the device agent's shape)",
    description:
      'The same target as `/target-state`, as `{"<uuid>": {apps, config, version}}`, with the same `ETag`/304 and heartbeat rules.',
    headers: [{ name: 'If-None-Match', description: 'the ETag of the target the device has, e.g. "3"' }],
    responses: {
      200: { ...json('the target', r.agentPollResponse), headers: { ETag: 'the target version, quoted' } },
      304: { description: 'unchanged since the ETag given' },
    },
    errors: [404],
  },
  {
    method: 'POST',
    path: '/api/v1/device/:uuid/key-exchange',
    tag: 'Devices',
    auth: 'device',
    summary: "Confirm the device key (the device agent's second provisioning step)",
    description:
      'The credential must be the key the device registered with, and equal `body.deviceApiKey`; `body.uuid` and the path name the device itself. Idempotent; writes nothing (a lost device is restored, as by any call).',
    body: keyExchangeBody,
    responses: { 200: json('the key is valid', r.keyExchangeResponse) },
    errors: [404],
  },
  {
    method: 'PATCH',
    path: '/api/v1/device/state',
    tag: 'Devices',
    auth: 'device',
    summary: 'Report the current state',
    description:
      "Body keyed by the calling device's uuid (any other uuid → 403; the same uuid twice, in any case → 400). Apps replace the reported app set; system and resource fields merge; `services` may be an object keyed by name or a list of services with `serviceName`; `imageName` means `image`. Fields devicetrail does not know are ignored and listed in `ignored_fields`. Events `current_state.updated` and the lifecycle events derived from the change.",
    body: z.record(z.string().describe("the calling device's uuid"), reportBody),
    responses: { 200: json('the report was folded', r.reportResponse) },
    errors: [404],
  },
  {
    method: 'POST',
    path: '/api/v1/device/events',
    tag: 'Devices',
    auth: 'device',
    summary: 'Send lifecycle events the device observed',
    description:
      "Container, image, volume and network events, each validated against its type's data schema (see docs/EVENT-SOURCING.md). At most DEVICE_EVENTS_RATE_LIMIT events per device (each event counts, not each request): 429 with Retry-After beyond.",
    body: deviceEventsBody,
    responses: { 201: json('recorded', r.deviceEventsResponse) },
    errors: [404, 429],
  },
  // --- telemetry (issue #15): metrics and device logs, outside the event log
  {
    method: 'POST',
    path: '/api/v1/device/:uuid/logs',
    tag: 'Devices',
    auth: 'device',
    summary: "Upload log lines (the device agent's log backend)",
    description:
      'NDJSON (`Content-Type: application/x-ndjson`, one line object per line, as the device agent sends it; `Content-Encoding: gzip` welcome) or a JSON array of the same objects, shown here. At most LOGS_BODY_LIMIT_KB once decoded (413), 10,000 lines; a message longer than 16,384 characters is cut and counted in `truncated`. Lines are not events: they go to `device_logs` (LOGS_RETENTION_DAYS). Its own uuid only (403); a disabled device gets 403. At most LOGS_RATE_LIMIT lines per device: 429 with Retry-After beyond.',
    body: logUploadBody,
    responses: { 201: json('stored', r.logUploadResponse) },
    errors: [404, 429],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/metrics',
    tag: 'Telemetry',
    auth: 'admin',
    summary: "A device's metrics series, downsampled",
    description:
      "Samples from `device_metrics` (every state report that carried a metric, METRICS_RETENTION_DAYS), in buckets of `step` counted from `since`: per bucket the number of samples and each gauge's mean, least and greatest. At most 1,000 buckets.",
    query: metricsQuery,
    queryHelp: {
      since: `${instantHelp} (default: 24 h before until)`,
      until: `${instantHelp} (default: now)`,
      step:
        'bucket width: a duration such as 30s, 5m, 1h (default: the finest of 10s, 30s, 1m, 5m… with at most 300 buckets)',
    },
    responses: { 200: json('the series', r.metricsSeriesResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/logs',
    tag: 'Telemetry',
    auth: 'admin',
    summary: "A device's log lines, paged",
    description: "Lines by the device's time (then arrival), filtered; `next_cursor` continues a page.",
    query: logsQuery,
    queryHelp: {
      since: `${instantHelp} (default: 24 h before until)`,
      until: `${instantHelp} (default: now)`,
      service: 'only lines of this service (`serviceName`)',
      level: 'only lines at this level or a more severe one: debug, info, warn, error',
      q: 'only lines whose message contains this text (any case)',
      limit: 'page size (default 100)',
      after: 'the `next_cursor` of the previous page',
      order: 'asc (default, oldest first) or desc',
    },
    responses: { 200: json('one page', r.deviceLogsResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/logs/stream',
    tag: 'Telemetry',
    auth: 'admin',
    summary: "A device's new log lines, live (Server-Sent Events)",
    description:
      'Lines stored after the stream opens, filtered like the paged read. The last message of each batch carries an `id`; reconnect with `Last-Event-ID` to resume after it. Counted against SSE_MAX_STREAMS_PER_TOKEN and SSE_MAX_STREAMS (log streams apart from event streams).',
    query: logStreamQuery,
    queryHelp: {
      service: 'only lines of this service',
      level: 'only lines at this level or a more severe one',
      q: 'only lines whose message contains this text',
    },
    headers: [{ name: 'Last-Event-ID', description: 'resume after this id' }],
    responses: {
      200: {
        description: 'an event stream: `data: <line JSON>` per line',
        contentType: 'text/event-stream',
        schema: z.string(),
      },
    },
    errors: [404, 429],
  },
  // --- admin: devices
  {
    method: 'POST',
    path: '/api/v1/devices/:uuid/target-state',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: "Set a device's target state",
    description:
      'Every call is a new version (event `target_state.updated`). Service `environment` values (also `config.environment`) and config keys matching the secret pattern (PASS, SECRET, TOKEN, KEY, CREDENTIAL, PRIVATE) are stored in the event as markers `hmac-sha256:<key id>:<hex>`; the values are kept outside the log for the device (README "Secrets"). Setting a new value is how a secret is rotated.',
    headers: [{
      name: 'If-Match',
      description: 'the target version this change is based on, e.g. "3"; 412 when the target moved on',
    }],
    body: targetBody,
    responses: {
      200: { ...json('the new version', r.setTargetResponse), headers: { ETag: 'the new target version, quoted' } },
    },
    errors: [404, 412],
  },
  {
    method: 'PATCH',
    path: '/api/v1/devices/:uuid/active',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: 'Enable or disable a device',
    description: "Events `device.online` / `device.offline`; no change, no event. A disabled device's key gets 403.",
    body: activeBody,
    responses: { 200: json('done', r.activeResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: 'List devices',
    query: deviceListQuery,
    queryHelp: {
      fleet: 'only this fleet',
      in_sync: 'true or false',
      active: 'true or false',
      lost: 'true: only devices whose connection is lost (no contact for CONNECTIVITY_TIMEOUT); false: the others',
      q: 'search: a uuid prefix, or part of the device name (any case)',
      limit: 'page size (≤ 1000)',
      offset: 'rows to skip',
    },
    responses: { 200: json('a page of devices', r.deviceListResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: 'Read a device',
    responses: { 200: json('the device', r.deviceResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/events',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: "A device's events",
    description: 'In version order, paged by `after_version`.',
    query: eventListQuery,
    queryHelp: {
      type: 'event types, comma-separated or repeated',
      since: instantHelp,
      until: instantHelp,
      after_version: 'cursor: versions after this one',
      limit: 'page size (≤ 1000)',
    },
    responses: { 200: json('a page of events', r.eventListResponse) },
    errors: [404],
  },
  // --- replay
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/state',
    tag: 'Replay',
    auth: 'admin',
    summary: "A device's state at an instant",
    description: 'The fold of its events with timestamp ≤ `at` (default now), from the nearest snapshot.',
    query: stateQuery,
    queryHelp: { at: instantHelp },
    responses: { 200: json('the state', r.replayStateResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/drift',
    tag: 'Replay',
    auth: 'admin',
    summary: "A device's drift intervals over a period",
    query: rangeQuery,
    queryHelp: { since: instantHelp, until: instantHelp },
    responses: { 200: json('when drift started, how long it lasted, what differed', r.replayDriftResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/diff',
    tag: 'Replay',
    auth: 'admin',
    summary: 'What changed between two instants',
    query: diffQuery,
    queryHelp: { from: instantHelp, to: `${instantHelp} (default now)` },
    responses: { 200: json('the changes and the events that caused them', r.replayDiffResponse) },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/timeline',
    tag: 'Replay',
    auth: 'admin',
    summary: "A device's timeline page",
    query: timelineQuery,
    queryHelp: {
      since: instantHelp,
      until: instantHelp,
      logs: 'also what the device logged within this long of each of its latest 10 drift starts, e.g. 5m',
    },
    responses: { 200: { description: 'a self-contained HTML page', contentType: 'text/html', schema: z.string() } },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/fleet/status',
    tag: 'Replay',
    auth: 'admin',
    summary: "The fleet's sync state at an instant",
    query: fleetQuery,
    queryHelp: { at: `${instantHelp} (default now)`, fleet: 'only this fleet' },
    responses: { 200: json('every device at that instant', r.fleetStatusResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/analytics',
    tag: 'Analytics',
    auth: 'admin',
    summary: 'Target changes, reports, reconciliation and drift over a window',
    query: analyticsQuery,
    queryHelp: analyticsHelp,
    responses: { 200: json('the analytics', r.analyticsResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/analytics/target-changes',
    tag: 'Analytics',
    auth: 'admin',
    summary: 'Target changes over a window',
    query: analyticsQuery,
    queryHelp: analyticsHelp,
    responses: { 200: json('counts and the busiest devices', r.activityResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/analytics/reports',
    tag: 'Analytics',
    auth: 'admin',
    summary: 'State reports over a window',
    query: analyticsQuery,
    queryHelp: analyticsHelp,
    responses: { 200: json('counts and the busiest devices', r.activityResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/analytics/reconciliation',
    tag: 'Analytics',
    auth: 'admin',
    summary: 'How long devices take to converge on a new target',
    query: analyticsQuery,
    queryHelp: analyticsHelp,
    responses: { 200: json('delays, the slowest, those still waiting', r.reconciliationResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/analytics/drifting',
    tag: 'Analytics',
    auth: 'admin',
    summary: 'Devices out of sync now',
    query: z.object({}).strict(),
    responses: { 200: json('the drifting devices', r.driftingResponse) },
  },
  // --- provisioning keys
  {
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    tag: 'Admin: provisioning keys',
    auth: 'admin',
    summary: 'Create a provisioning key',
    description: 'Event `provisioning_key.created`. The secret is in the answer only.',
    body: createKeyBody,
    responses: { 201: json('created; `key` is shown once', r.createdProvisioningKeyResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/provisioning-keys',
    tag: 'Admin: provisioning keys',
    auth: 'admin',
    summary: 'List provisioning keys',
    responses: {
      200: json('every key, never a secret', z.object({ provisioning_keys: z.array(r.provisioningKeyResponse) })),
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/provisioning-keys/:id',
    tag: 'Admin: provisioning keys',
    auth: 'admin',
    summary: 'Revoke a provisioning key',
    description: 'Event `provisioning_key.revoked`; devices already registered keep working.',
    body: revokeKeyBody,
    bodyOptional: true,
    responses: { 200: json('revoked (`changed`: false when it already was)', r.revokedProvisioningKeyResponse) },
    errors: [404],
  },
  // --- secrets
  {
    method: 'GET',
    path: '/api/v1/devices/:uuid/secrets',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: "The secrets of a device's target, as markers",
    description:
      'Each environment value and secret config value of the current target as its marker, whether its value is kept, erased or missing, and whether the device reported the same marker. Never a value.',
    responses: { 200: json("the target's secrets", r.deviceSecretsResponse) },
    errors: [404],
  },
  {
    method: 'DELETE',
    path: '/api/v1/secrets/:hash',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: 'Erase a secret value (crypto-shredding)',
    description:
      'Erases the value a marker stands for, in every target that uses it: devices polling such a target no longer receive that variable or config key (the ETag changes). The log keeps the marker. Idempotent. A target that names the value again keeps it again.',
    params: { hash: z.string().describe('the marker, hmac-sha256:<8 hex key id>:<64 hex>') },
    responses: { 200: json('erased', r.erasedSecretResponse) },
    errors: [400, 404],
  },
  // --- webhooks
  {
    method: 'POST',
    path: '/api/v1/webhooks',
    tag: 'Admin: webhooks',
    auth: 'admin',
    summary: 'Register a webhook',
    description:
      'Deliveries are POSTs of the event JSON signed with HMAC-SHA256 of the secret; retried with exponential backoff.',
    body: webhookBody,
    responses: {
      201: {
        ...json('registered; `secret` is shown once', r.webhookResponse.extend({ secret: z.string() })),
        headers: { Location: "the webhook's URL" },
      },
    },
  },
  {
    method: 'GET',
    path: '/api/v1/webhooks',
    tag: 'Admin: webhooks',
    auth: 'admin',
    summary: 'List webhooks',
    query: webhookListQuery,
    queryHelp: { include_deleted: 'true to include deleted webhooks' },
    responses: { 200: json('the webhooks', z.object({ webhooks: z.array(r.webhookResponse) })) },
  },
  {
    method: 'GET',
    path: '/api/v1/webhooks/:id',
    tag: 'Admin: webhooks',
    auth: 'admin',
    summary: 'Read a webhook',
    responses: { 200: json('the webhook', r.webhookResponse) },
    errors: [404],
  },
  {
    method: 'DELETE',
    path: '/api/v1/webhooks/:id',
    tag: 'Admin: webhooks',
    auth: 'admin',
    summary: 'Delete a webhook',
    description: 'Pending deliveries are cancelled.',
    responses: { 204: { description: 'deleted' } },
    errors: [404],
  },
  {
    method: 'GET',
    path: '/api/v1/webhooks/:id/deliveries',
    tag: 'Admin: webhooks',
    auth: 'admin',
    summary: "A webhook's deliveries, with every attempt",
    query: deliveriesQuery,
    queryHelp: {
      status: 'pending, succeeded, failed or cancelled',
      limit: 'page size (≤ 500)',
      offset: 'rows to skip',
    },
    responses: { 200: json('a page of deliveries', r.deliveriesResponse) },
    errors: [404],
  },
  // --- feeds
  {
    method: 'GET',
    path: '/api/v1/events',
    tag: 'Event feed',
    auth: 'admin',
    summary: 'The global event feed, a page at a time',
    description: 'Gap-safe: an event committed late by an earlier transaction is never skipped. Follow `next_cursor`.',
    query: feedQuery,
    queryHelp: {
      after: 'cursor from a previous page',
      type: 'event types, comma-separated or repeated',
      aggregate_type: 'e.g. device',
      aggregate_id: 'e.g. a device uuid',
      limit: 'page size (≤ 1000)',
    },
    responses: { 200: json('a page of events', r.feedResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/events/stream',
    tag: 'Event feed',
    auth: 'admin',
    summary: 'The global event feed, live (Server-Sent Events)',
    description:
      "Each message's `id` is the cursor after it; reconnect with `Last-Event-ID` to resume without gaps. Without a cursor the stream starts at the head.",
    query: streamQuery,
    queryHelp: {
      after: 'cursor to start after',
      type: 'event types, comma-separated or repeated',
      aggregate_type: 'e.g. device',
      aggregate_id: 'e.g. a device uuid',
    },
    headers: [{ name: 'Last-Event-ID', description: 'resume after this cursor' }],
    responses: {
      200: {
        description: 'an event stream: `id: <cursor>` and `data: <event JSON>` per event',
        contentType: 'text/event-stream',
        schema: z.string(),
      },
    },
  },
  {
    method: 'GET',
    path: '/api/v1/fleet/summary',
    tag: 'Event feed',
    auth: 'admin',
    summary: 'Devices by fleet and type (the device_summary projection)',
    query: fleetSummaryQuery,
    queryHelp: { fleet: 'only this fleet' },
    responses: { 200: json("counts, with the projection's and listeners' lag", r.fleetSummaryResponse) },
  },
  // --- operations
  {
    method: 'GET',
    path: '/healthz',
    tag: 'Operations',
    auth: 'none',
    summary: 'Liveness: the process answers',
    responses: { 200: json('alive', r.healthResponse) },
  },
  {
    method: 'GET',
    path: '/readyz',
    tag: 'Operations',
    auth: 'none',
    summary: 'Readiness: database reachable, migrations applied, partitions ahead present, not draining',
    responses: {
      200: json('ready', r.readyResponse),
      503: json('not ready, or shutting down; the failing checks say why', r.readyResponse),
    },
  },
  {
    method: 'GET',
    path: '/metrics',
    tag: 'Operations',
    auth: 'metrics',
    summary: 'Prometheus metrics',
    responses: {
      200: { description: 'the Prometheus text exposition format', contentType: 'text/plain', schema: z.string() },
    },
  },
  {
    method: 'GET',
    path: '/openapi.json',
    tag: 'Operations',
    auth: 'none',
    summary: 'This API description (OpenAPI 3.1)',
    responses: { 200: json('the document', z.record(z.string(), z.unknown())) },
  },
  {
    method: 'GET',
    path: '/docs',
    tag: 'Operations',
    auth: 'none',
    summary: 'The API reference as a self-contained HTML page',
    responses: {
      200: {
        description: 'an HTML page that needs nothing from elsewhere',
        contentType: 'text/html',
        schema: z.string(),
      },
    },
  },
  // --- listeners and integrity (issue #17)
  {
    method: 'GET',
    path: '/api/v1/listeners',
    tag: 'Listeners',
    auth: 'admin',
    summary: "Every listener's checkpoint, owner, lag and open dead letters",
    responses: { 200: json('the listeners', r.listenersResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/dead-letters',
    tag: 'Listeners',
    auth: 'admin',
    summary: 'Dead letters (events a listener gave up on), newest first',
    query: deadLetterQuery,
    queryHelp: {
      listener: 'only this listener',
      status: 'dead, redeliver, redelivered or discarded',
      limit: 'at most',
    },
    responses: { 200: json('the dead letters', r.deadLettersResponse) },
  },
  {
    method: 'POST',
    path: '/api/v1/dead-letters/redeliver',
    tag: 'Listeners',
    auth: 'admin',
    summary: 'Redeliver dead letters: the running listener of each retries them',
    description:
      'Chooses letters by `ids`, `listener`, or `all: true` (combined: all must match); only letters still `dead` are queued.',
    body: deadLetterSelectionBody,
    responses: { 200: json('how many were queued', r.redeliveredResponse) },
  },
  {
    method: 'POST',
    path: '/api/v1/dead-letters/discard',
    tag: 'Listeners',
    auth: 'admin',
    summary: 'Discard dead letters (give up on them)',
    body: deadLetterSelectionBody,
    responses: { 200: json('how many were discarded', r.discardedResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/partitions',
    tag: 'Integrity and retention',
    auth: 'admin',
    summary: "The event log's day partitions (rows, sizes, due for retention) and the retention horizon",
    responses: { 200: json('the retention report', r.partitionsResponse) },
  },
  {
    method: 'GET',
    path: '/api/v1/integrity/checks',
    tag: 'Integrity and retention',
    auth: 'admin',
    summary: 'The last hash-chain checks and their results, newest first',
    query: checksQuery,
    queryHelp: { limit: 'how many (default 10)' },
    responses: { 200: json('the checks', r.integrityChecksResponse) },
  },
  {
    method: 'POST',
    path: '/api/v1/integrity/checks',
    tag: 'Integrity and retention',
    auth: 'admin',
    summary: 'Check every hash chain (as `npm run replay -- verify`)',
    description:
      'One check at a time: while one runs, this answers it. A check that ends within 5 s is answered with its result (200); a longer one goes on in the background (202) and GET /api/v1/integrity/checks shows it.',
    responses: {
      200: json('the check ran: passed, failed (with each broken chain) or error', r.integrityCheckRunResponse),
      202: json('the check is running', r.integrityCheckRunResponse),
    },
  },
  // --- the admin console (issue #17)
  {
    method: 'GET',
    path: '/sign-in',
    tag: 'Admin console',
    auth: 'none',
    operationId: 'consoleSignInPage',
    summary: "The console's sign-in page",
    query: signInQuery,
    queryHelp: { next: 'the console path to open after signing in' },
    responses: {
      200: { description: 'the sign-in page', contentType: 'text/html', schema: z.string() },
      302: { description: 'already signed in: to `next`' },
    },
  },
  {
    method: 'GET',
    path: '/console/assets/:file',
    tag: 'Admin console',
    auth: 'none',
    summary: "The console's scripts and stylesheet (no build step, nothing from elsewhere)",
    params: { file: z.string().describe('e.g. console.js, console.css') },
    query: assetQuery,
    queryHelp: { v: 'the content hash the pages link with: such a URL is cached for a year' },
    responses: {
      200: { description: 'the file', contentType: 'text/javascript', schema: z.string() },
      304: { description: 'unchanged (If-None-Match)' },
    },
    errors: [404],
  },
  {
    method: 'POST',
    path: '/console/session',
    tag: 'Admin console',
    auth: 'admin',
    summary: 'Sign in to the console: an admin token (in the Authorization header) for a session cookie',
    description:
      'Sets an HttpOnly, SameSite=Strict cookie (Secure over HTTPS, or with CONSOLE_SECURE_COOKIE=always) valid for CONSOLE_SESSION_TTL. ' +
      "Requests without an Authorization header may then use the cookie as that admin token; state-changing ones must send the page's CSRF token in `X-CSRF-Token`.",
    responses: { 201: json('signed in; the cookie is set', r.consoleSessionResponse) },
  },
  {
    method: 'GET',
    path: '/console/session',
    tag: 'Admin console',
    auth: 'admin',
    summary: 'Who is signed in, and until when',
    responses: { 200: json('the caller', r.consoleSessionResponse) },
  },
  {
    method: 'DELETE',
    path: '/console/session',
    tag: 'Admin console',
    auth: 'admin',
    summary: 'Sign out: the session ends on the server and its cookie is cleared',
    responses: { 204: { description: 'signed out (nothing to do for an admin token)' } },
  },
  ...consolePage(
    'GET',
    '/',
    'consoleFleetPage',
    'Fleet: counts, filters, search, a page of devices, live',
    fleetPageQuery,
  ),
  ...consolePage(
    'GET',
    '/devices/:uuid',
    'consoleDevicePage',
    'A device: identity, actions, time slider, state at an instant, drift, timeline, events',
    devicePageQuery,
    [404, 410],
  ),
  ...consolePage(
    'GET',
    '/provisioning-keys',
    'consoleKeysPage',
    'Provisioning keys: create, usage, revoke',
    emptyPageQuery,
  ),
  ...consolePage('GET', '/webhooks', 'consoleWebhooksPage', 'Webhooks: create, list, delete', emptyPageQuery),
  ...consolePage(
    'GET',
    '/webhooks/:id',
    'consoleWebhookPage',
    "A webhook's deliveries with every attempt",
    webhookPageQuery,
    [404],
  ),
  ...consolePage('GET', '/listeners', 'consoleListenersPage', 'Listeners (lag) and dead letters', listenersPageQuery),
  ...consolePage(
    'GET',
    '/events',
    'consoleEventsPage',
    'The live event stream, with filters and pause',
    liveEventsPageQuery,
  ),
  ...consolePage('GET', '/analytics', 'consoleAnalyticsPage', "The seed's analytics as charts", analyticsPageQuery),
  ...consolePage(
    'GET',
    '/integrity',
    'consoleIntegrityPage',
    'Partitions, retention horizon, hash-chain checks',
    emptyPageQuery,
  ),
];

/** A console page: HTML for a session cookie or an admin token; a browser without either goes to /sign-in. */
function consolePage(
  method: 'GET',
  path: string,
  operationId: string,
  summary: string,
  query: ZodTypeAny,
  errors: number[] = [],
): RouteDoc[] {
  return [{
    method,
    path,
    tag: 'Admin console',
    auth: 'admin',
    operationId,
    summary,
    description:
      'A console page (the console session cookie, or an admin token). A browser (Accept: text/html) without a session is redirected to /sign-in; other clients get 401.',
    query,
    responses: {
      200: { description: 'the page', contentType: 'text/html', schema: z.string() },
      302: { description: 'a browser without a session: to /sign-in?next=…' },
    },
    errors,
  }];
}
