// The API description, one declaration per route: its credentials and the zod schemas the
// handler itself validates with (request bodies and query strings come from the route
// modules, never copied), plus the answers (app/http/openapi/response-schemas.ts). app/http/openapi/openapi.ts turns
// this into OpenAPI 3.1; test/ops/openapi.test.ts fails when a registered route has no
// declaration here or a declaration has no route.
import type { ZodTypeAny } from 'zod';
import { z } from 'zod';
import { activeBody, deviceListQuery, eventListQuery, targetBody } from '../routes/admin-devices.ts';
import { deviceEventsBody, registerBody, reportBody } from '../routes/device.ts';
import { feedQuery, streamQuery } from '../routes/feed.ts';
import { fleetSummaryQuery } from '../routes/fleet.ts';
import { createKeyBody, revokeKeyBody } from '../routes/provisioning-keys.ts';
import { analyticsQuery, diffQuery, fleetQuery, rangeQuery, stateQuery } from '../routes/replay.ts';
import * as r from './response-schemas.ts';
import { deliveriesQuery, listQuery as webhookListQuery, webhookBody } from '../routes/webhooks.ts';

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
  /** Error statuses besides the ones every route of its kind has (400, 401, 403, 413, 415, 503). */
  errors?: number[];
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
      "Registers the device in the provisioning key's fleet (event `device.provisioned`). The same uuid again with the same `deviceApiKey`: 200, nothing written; with another key: 409.",
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
      'What the device should run. Counts as a heartbeat. `ETag` is the target version; `If-None-Match` with it → 304.',
    headers: [{ name: 'If-None-Match', description: 'the ETag of the target the device has, e.g. "3"' }],
    responses: {
      200: { ...json('the target', r.targetPollResponse), headers: { ETag: 'the target version, quoted' } },
      304: { description: 'unchanged since the ETag given' },
    },
    errors: [404],
  },
  {
    method: 'PATCH',
    path: '/api/v1/device/state',
    tag: 'Devices',
    auth: 'device',
    summary: 'Report the current state',
    description:
      "Body keyed by the calling device's uuid (any other uuid → 403). Apps replace the reported app set; system and resource fields merge. Events `current_state.updated` and the lifecycle events derived from the change.",
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
      "Container, image, volume and network events, each validated against its type's data schema (see docs/EVENT-SOURCING.md).",
    body: deviceEventsBody,
    responses: { 201: json('recorded', r.deviceEventsResponse) },
    errors: [404],
  },
  // --- admin: devices
  {
    method: 'POST',
    path: '/api/v1/devices/:uuid/target-state',
    tag: 'Admin: devices',
    auth: 'admin',
    summary: "Set a device's target state",
    description: 'Every call is a new version (event `target_state.updated`).',
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
    query: rangeQuery,
    queryHelp: { since: instantHelp, until: instantHelp },
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
];
