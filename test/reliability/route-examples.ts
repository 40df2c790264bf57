// One valid request per route, keyed "METHOD /pattern" exactly as the routers register it
// (app/http/openapi/openapi.ts registeredRoutes). The auth matrix sends each with every kind of credential;
// the fuzzer starts from them. A route without an example fails the suite, so a new endpoint
// cannot slip past the matrix.
import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponse } from './http-client.ts';

/** The records the examples point at. */
export type ExampleFixture = {
  /** The device a device request is about (its key is the caller's for "own device"). */
  device: string;
  /** That device's key, for the one body that names it (the key exchange); absent: none. */
  deviceKey?: string;
  /** A device admin writes may change (enabled → enabled: no event, still a 2xx). */
  adminDevice: string;
  /** A provisioning key the DELETE example may revoke. */
  victimKeyId: string;
  webhookId: string;
  /** A webhook the DELETE example may delete. */
  victimWebhookId: string;
  /** The marker of a secret value kept for adminDevice's target, which the erase example erases (plantSecret). */
  secretMarker: string;
};

/**
 * Sets a target with one environment value on `uuid` (as an admin) and returns its marker, for
 * the secrets examples (README "Secrets").
 */
export async function plantSecret(
  request: (r: HttpRequest) => Promise<HttpResponse>,
  adminToken: string,
  uuid: string,
): Promise<string> {
  const headers = { Authorization: `Bearer ${adminToken}` };
  const set = await request({
    method: 'POST',
    path: `/api/v1/devices/${uuid}/target-state`,
    headers,
    body: {
      apps: {
        1000: {
          appName: 'web',
          services: [{ serviceName: 'main', image: 'web:1', environment: { API_TOKEN: `example-${randomUUID()}` } }],
        },
      },
    },
  });
  if (set.status !== 200) throw new Error(`target with a secret: ${set.status} ${set.text}`);
  const listed = await request({ method: 'GET', path: `/api/v1/devices/${uuid}/secrets`, headers });
  const marker = listed.json?.secrets?.[0]?.target;
  if (typeof marker !== 'string') throw new Error(`no secret marker listed: ${listed.status} ${listed.text}`);
  return marker;
}

type Example = (fx: ExampleFixture) => HttpRequest;

const get = (path: string): Example => () => ({ method: 'GET', path });

/** Valid requests, by route. */
export const routeExamples: Record<string, Example> = {
  'POST /api/v1/device/register': () => ({
    method: 'POST',
    path: '/api/v1/device/register',
    body: {
      uuid: randomUUID(),
      deviceName: 'example',
      deviceType: 'raspberry-pi-4',
      deviceApiKey: `example-key-${randomUUID()}`,
    },
  }),
  'GET /api/v1/device/:uuid/target-state': (fx) => ({
    method: 'GET',
    path: `/api/v1/device/${fx.device}/target-state`,
  }),
  'GET /api/v1/device/:uuid/state': (fx) => ({ method: 'GET', path: `/api/v1/device/${fx.device}/state` }),
  'POST /api/v1/device/:uuid/key-exchange': (fx) => ({
    method: 'POST',
    path: `/api/v1/device/${fx.device}/key-exchange`,
    body: { uuid: fx.device, deviceApiKey: fx.deviceKey ?? 'not-the-device-key' },
  }),
  'PATCH /api/v1/device/state': (fx) => ({
    method: 'PATCH',
    path: '/api/v1/device/state',
    body: { [fx.device]: { cpu_usage: Math.random() * 100 } },
  }),
  'POST /api/v1/device/events': () => ({
    method: 'POST',
    path: '/api/v1/device/events',
    body: { events: [{ type: 'volume.created', data: { app_id: 1, name: `v-${randomUUID().slice(0, 8)}` } }] },
  }),
  'POST /api/v1/devices/:uuid/target-state': (fx) => ({
    method: 'POST',
    path: `/api/v1/devices/${fx.adminDevice}/target-state`,
    body: {
      apps: { 1000: { appName: 'web', services: [{ serviceName: 'main', image: 'web:1' }] } },
      config: { MODE: 'example' },
    },
  }),
  'PATCH /api/v1/devices/:uuid/active': (fx) => ({
    method: 'PATCH',
    path: `/api/v1/devices/${fx.adminDevice}/active`,
    body: { is_active: true },
  }),
  'GET /api/v1/devices': get('/api/v1/devices?limit=5'),
  'GET /api/v1/devices/:uuid': (fx) => ({ method: 'GET', path: `/api/v1/devices/${fx.adminDevice}` }),
  'GET /api/v1/devices/:uuid/events': (fx) => ({
    method: 'GET',
    path: `/api/v1/devices/${fx.adminDevice}/events?limit=5`,
  }),
  'GET /api/v1/devices/:uuid/state': (fx) => ({ method: 'GET', path: `/api/v1/devices/${fx.adminDevice}/state` }),
  'GET /api/v1/devices/:uuid/drift': (fx) => ({ method: 'GET', path: `/api/v1/devices/${fx.adminDevice}/drift` }),
  'GET /api/v1/devices/:uuid/diff': (fx) => ({
    method: 'GET',
    path: `/api/v1/devices/${fx.adminDevice}/diff?from=${
      encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())
    }`,
  }),
  'GET /api/v1/devices/:uuid/timeline': (fx) => ({ method: 'GET', path: `/api/v1/devices/${fx.adminDevice}/timeline` }),
  // secrets (issue #15): markers only; erasing is idempotent
  'GET /api/v1/devices/:uuid/secrets': (fx) => ({ method: 'GET', path: `/api/v1/devices/${fx.adminDevice}/secrets` }),
  'DELETE /api/v1/secrets/:hash': (fx) => ({ method: 'DELETE', path: `/api/v1/secrets/${fx.secretMarker}` }),
  // telemetry and device logs (issue #15)
  'POST /api/v1/device/:uuid/logs': (fx) => ({
    method: 'POST',
    path: `/api/v1/device/${fx.device}/logs`,
    body: [{ message: 'example', timestamp: Date.now(), level: 'info', source: { type: 'system', name: 'agent' } }],
  }),
  'GET /api/v1/devices/:uuid/metrics': (fx) => ({
    method: 'GET',
    path: `/api/v1/devices/${fx.adminDevice}/metrics?step=1h`,
  }),
  'GET /api/v1/devices/:uuid/logs': (fx) => ({ method: 'GET', path: `/api/v1/devices/${fx.adminDevice}/logs?limit=5` }),
  'GET /api/v1/devices/:uuid/logs/stream': (fx) => ({
    method: 'GET',
    path: `/api/v1/devices/${fx.adminDevice}/logs/stream`,
  }),
  'GET /api/v1/fleet/status': get('/api/v1/fleet/status'),
  'GET /api/v1/analytics': get('/api/v1/analytics?window=1h'),
  'GET /api/v1/analytics/target-changes': get('/api/v1/analytics/target-changes'),
  'GET /api/v1/analytics/reports': get('/api/v1/analytics/reports'),
  'GET /api/v1/analytics/reconciliation': get('/api/v1/analytics/reconciliation'),
  'GET /api/v1/analytics/drifting': get('/api/v1/analytics/drifting'),
  'POST /api/v1/provisioning-keys': () => ({
    method: 'POST',
    path: '/api/v1/provisioning-keys',
    body: { fleet_id: 'example-fleet', description: 'example' },
  }),
  'GET /api/v1/provisioning-keys': get('/api/v1/provisioning-keys'),
  'DELETE /api/v1/provisioning-keys/:id': (fx) => ({
    method: 'DELETE',
    path: `/api/v1/provisioning-keys/${fx.victimKeyId}`,
  }),
  'POST /api/v1/webhooks': () => ({
    method: 'POST',
    path: '/api/v1/webhooks',
    body: { url: 'http://127.0.0.1:9/hook', event_types: ['device.*'] },
  }),
  'GET /api/v1/webhooks': get('/api/v1/webhooks'),
  'GET /api/v1/webhooks/:id': (fx) => ({ method: 'GET', path: `/api/v1/webhooks/${fx.webhookId}` }),
  'DELETE /api/v1/webhooks/:id': (fx) => ({ method: 'DELETE', path: `/api/v1/webhooks/${fx.victimWebhookId}` }),
  'GET /api/v1/webhooks/:id/deliveries': (fx) => ({
    method: 'GET',
    path: `/api/v1/webhooks/${fx.webhookId}/deliveries`,
  }),
  'GET /api/v1/events': get('/api/v1/events?limit=5'),
  'GET /api/v1/events/stream': get('/api/v1/events/stream'),
  'GET /api/v1/fleet/summary': get('/api/v1/fleet/summary'),
  'GET /healthz': get('/healthz'),
  'GET /readyz': get('/readyz'),
  'GET /metrics': get('/metrics'),
  'GET /openapi.json': get('/openapi.json'),
  'GET /docs': get('/docs'),
  // listeners, integrity and the admin console (issue #17)
  'GET /api/v1/listeners': get('/api/v1/listeners'),
  'GET /api/v1/dead-letters': get('/api/v1/dead-letters?limit=10'),
  'POST /api/v1/dead-letters/redeliver': () => ({
    method: 'POST',
    path: '/api/v1/dead-letters/redeliver',
    body: { listener: 'example-listener' },
  }),
  'POST /api/v1/dead-letters/discard': () => ({
    method: 'POST',
    path: '/api/v1/dead-letters/discard',
    body: { ids: [987654321] },
  }),
  'GET /api/v1/partitions': get('/api/v1/partitions'),
  'GET /api/v1/integrity/checks': get('/api/v1/integrity/checks?limit=3'),
  'POST /api/v1/integrity/checks': () => ({ method: 'POST', path: '/api/v1/integrity/checks' }),
  'GET /sign-in': get('/sign-in?next=%2Fwebhooks'),
  'GET /console/assets/:file': get('/console/assets/console.css'),
  'POST /console/session': () => ({ method: 'POST', path: '/console/session' }),
  'GET /console/session': get('/console/session'),
  'DELETE /console/session': () => ({ method: 'DELETE', path: '/console/session' }),
  'GET /': get('/?show=drifting'),
  'GET /devices/:uuid': (fx) => ({ method: 'GET', path: `/devices/${fx.device}` }),
  'GET /provisioning-keys': get('/provisioning-keys'),
  'GET /webhooks': get('/webhooks'),
  'GET /webhooks/:id': (fx) => ({ method: 'GET', path: `/webhooks/${fx.webhookId}` }),
  'GET /listeners': get('/listeners'),
  'GET /events': get('/events?type=device.offline'),
  'GET /analytics': get('/analytics?window=1h'),
  'GET /integrity': get('/integrity'),
};
