// The admin console's pages (issue #17), served at / beside the API: each page is drawn on the
// server from the same queries the API answers with (app/html/console/), and its script calls
// the API for every action, with the session cookie and the CSRF token. Page routes sit on the
// console router (the admin guard: a session cookie, or an admin token); the sign-in page and
// the static assets are public.
import type { Context, Next } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { computeAnalytics } from '../../../domain/replay/analytics.ts';
import { replayDrift, replayState } from '../../../domain/replay/service.ts';
import { ReplayError } from '../../../domain/replay/source.ts';
import { parseDuration } from '../../../domain/replay/time.ts';
import { secretMatches } from '../../../domain/device/secrets.ts';
import { latestIntegrityChecks } from '../../../infra/event-store/integrity-checks.ts';
import { readSecretStatus } from '../../../infra/secrets/secret-values.ts';
import { eventSeries } from '../../../infra/replay/event-series.ts';
import { createReplayQueries } from '../../../infra/replay/queries.ts';
import { listDeadLetters, listenerStatuses } from '../../../infra/realtime/listener-store.ts';
import { getWebhook, listDeliveries, listWebhooks } from '../../../infra/webhooks/registry.ts';
import { renderAnalytics, WINDOWS } from '../../html/console/analytics.ts';
import { assetUrl, consoleAssets } from '../../html/console/assets.ts';
import {
  type DeviceInput,
  type DeviceViewLike,
  EVENT_TYPES,
  renderDevice,
  renderDeviceState,
} from '../../html/console/device.ts';
import { type FleetFilter, renderFleet } from '../../html/console/fleet.ts';
import { esc } from '../../html/console/html.ts';
import { renderIntegrity } from '../../html/console/integrity.ts';
import { renderKeys } from '../../html/console/keys.ts';
import { CONSOLE_CSP, renderPage, renderSignInPage, type Section } from '../../html/console/layout.ts';
import { renderListeners } from '../../html/console/listeners.ts';
import { renderLiveEvents } from '../../html/console/live-events.ts';
import { renderWebhookDeliveries, renderWebhooks } from '../../html/console/webhooks.ts';
import { partitionsReport } from '../../cli/partitions.ts';
import { callerOf, credentialOf } from '../middleware/auth.ts';
import { csrfTokenOf, sessionSecretOf } from '../middleware/console-session.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { instantSchema, intQuery, MAX_OFFSET, uuidParam } from '../request.ts';
import { deviceView } from '../views.ts';
import { transportFacts } from '../../../infra/devices/transport-facts.ts';
import { latestMetrics, readMetricsSeries } from '../../../infra/telemetry/metrics-series.ts';
import { readDeviceLogs } from '../../../infra/telemetry/device-logs.ts';
import { metricGaugeNames } from '../../../domain/device/telemetry.ts';

const FLEET_PAGE_SIZE = 50;
const EVENTS_PAGE_SIZE = 50;
const SLIDER_EVENTS = 1000;
/** The device page's log lines (the newest of the last day). */
const LOG_LINES = 50;
/** The gauges the device page charts (the others are in the latest sample and the API). */
const CHARTED_GAUGES = ['cpu_usage', 'memory_usage', 'cpu_temp', 'temperature'] as const;
const DELIVERIES_PAGE_SIZE = 20;

const optionalText = (max: number) => z.string().max(max).optional().transform((v) => v?.trim() ?? '');

/** Query of the fleet page. */
export const fleetPageQuery = z.object({
  q: optionalText(128),
  fleet: optionalText(128),
  show: z.enum(['', 'drifting', 'in_sync', 'disabled', 'lost']).default(''),
  page: intQuery(1, 1_000_000).default(1),
}).strict();

/** Query of the device page; `part=state` answers the state section alone (the time slider). */
export const devicePageQuery = z.object({
  at: instantSchema.optional(),
  type: z.union([z.string().max(64), z.array(z.string().max(64)).max(50)]).optional(),
  before: intQuery(1, Number.MAX_SAFE_INTEGER).optional(),
  part: z.enum(['state']).optional(),
}).strict();

/** Query of a webhook's page. */
export const webhookPageQuery = z.object({
  status: z.enum(['', 'pending', 'succeeded', 'failed', 'cancelled']).default(''),
  offset: intQuery(0, MAX_OFFSET).default(0),
}).strict();

/** Query of the listeners page. */
export const listenersPageQuery = z.object({
  listener: optionalText(200),
  status: z.enum(['', 'dead', 'redeliver', 'redelivered', 'discarded']).default(''),
}).strict();

/** Query of the live events page (pre-fills its filters). */
export const liveEventsPageQuery = z.object({
  type: optionalText(2000),
  aggregate_type: optionalText(64),
  aggregate_id: optionalText(200),
}).strict();

/** Query of the analytics page. */
export const analyticsPageQuery = z.object({ window: z.enum(WINDOWS).default('24h') }).strict();

/** Query of the sign-in page: where to go after signing in (a path on this site). */
export const signInQuery = z.object({ next: z.string().max(2000).optional() }).strict();

/** Query of an asset: its content hash, as the pages link it. */
export const assetQuery = z.object({ v: z.string().max(64).optional() }).strict();

/** Query of the integrity, provisioning keys and webhooks pages. */
export const emptyPageQuery = z.object({}).strict();

/** A path on this site to return to, or `/` (never another origin: `//host`, `/\host`, a scheme). */
function localPath(next: string | undefined): string {
  return next !== undefined && /^\/(?![/\\])[^\s]*$/.test(next) ? next : '/';
}

function securityHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', CONSOLE_CSP);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Referrer-Policy', 'same-origin');
  ctx.set('Cache-Control', 'no-store');
}

function sendHtml(ctx: Context, body: string, status = 200): void {
  securityHeaders(ctx);
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = body;
}

/** Registers the public console routes (the sign-in page, the assets) on the root router. */
export function consolePublicRoutes(router: Router, deps: AppDeps): void {
  router.get('/sign-in', async (ctx: Context) => {
    const query = parseOr400(signInQuery, ctx.query, 'query');
    const next = localPath(query.next);
    const secret = sessionSecretOf(ctx, deps);
    if (secret !== null && (await deps.consoleSessions.find(secret, deps.clock())) !== null) {
      securityHeaders(ctx);
      ctx.redirect(next);
      return;
    }
    sendHtml(ctx, renderSignInPage(next));
  });

  router.get('/console/assets/:file', (ctx: Context) => {
    const name = (ctx as unknown as { params: { file: string } }).params.file;
    const query = parseOr400(assetQuery, ctx.query, 'query');
    const asset = consoleAssets.get(name);
    if (asset === undefined) throw new HttpError(404, 'not_found', `no console asset ${name}`);
    const etag = `"${asset.hash}"`;
    // a URL with the content's hash never changes: kept a year; without it, revalidated
    ctx.set('Cache-Control', query.v === asset.hash ? 'public, max-age=31536000, immutable' : 'no-cache');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('ETag', etag);
    if (ctx.get('If-None-Match') === etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    ctx.body = asset.body;
  });
}

/** Registers the console pages on the console router (its admin guard authenticates). */
export function consolePageRoutes(router: Router, deps: AppDeps): void {
  // history and analytics read the replica when there is one; the device row itself, and the
  // operator's own objects (keys, webhooks, listeners), the primary (a page after a change)
  const source = createReplayQueries(deps.readPool, { clock: deps.clock });

  const page = (
    ctx: Context,
    input: { title: string; section: Section; body: string; liveStream?: string; script?: string },
  ) => {
    const admin = callerOf(ctx, 'admin');
    const credential = credentialOf(ctx);
    // an admin token caller (a script) needs no CSRF token: it sends its token in a header
    const csrfToken = credential.kind === 'session' ? csrfTokenOf(credential.secret) : '';
    sendHtml(ctx, renderPage({ ...input, admin, csrfToken }));
  };

  router.get('/', async (ctx: Context) => {
    const query = parseOr400(fleetPageQuery, ctx.query, 'query');
    const filter: FleetFilter = { q: query.q, fleet: query.fleet, show: query.show, page: query.page };
    const fleet = filter.fleet === '' ? {} : { fleet_id: filter.fleet };
    const [counts, fleets, list] = await Promise.all([
      deps.readDevices.counts(fleet),
      deps.readDevices.fleets(),
      deps.readDevices.list({
        ...fleet,
        ...(filter.q === '' ? {} : { search: filter.q }),
        ...(filter.show === 'drifting' ? { in_sync: false } : {}),
        ...(filter.show === 'in_sync' ? { in_sync: true } : {}),
        ...(filter.show === 'disabled' ? { is_active: false } : {}),
        ...(filter.show === 'lost' ? { connection_lost: true } : {}),
        limit: FLEET_PAGE_SIZE,
        offset: (filter.page - 1) * FLEET_PAGE_SIZE,
      }),
    ]);
    page(ctx, {
      title: 'Fleet',
      section: 'fleet',
      liveStream: 'aggregate_type=device',
      body: renderFleet({
        now: deps.clock(),
        filter,
        pageSize: FLEET_PAGE_SIZE,
        counts,
        fleets,
        devices: list.devices.map(deviceView),
        total: list.total,
      }),
    });
  });

  router.get('/devices/:uuid', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(devicePageQuery, ctx.query, 'query');
    const row = await deps.devices.get(uuid);
    if (row === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
    const now = deps.clock();
    const device = deviceView(row) as DeviceViewLike;
    let state: DeviceInput['state'] = { view: device, at: null, eventsFolded: null };
    if (query.at !== undefined) {
      try {
        const replayed = await replayState(source, uuid, query.at);
        state = {
          view: replayed.view as unknown as DeviceViewLike,
          at: query.at,
          eventsFolded: replayed.result.events_folded,
        };
      } catch (error) {
        if (!(error instanceof ReplayError)) throw error;
        throw new HttpError(error.code === 'before_retention_horizon' ? 410 : 404, error.code, error.message);
      }
    }
    if (query.part === 'state') {
      sendHtml(ctx, renderDeviceState(state, now));
      return;
    }
    const types = (Array.isArray(query.type) ? query.type : query.type === undefined ? [] : [query.type])
      .flatMap((t) => t.split(',')).map((t) => t.trim()).filter((t) => EVENT_TYPES.includes(t));
    // the current target's secrets: markers and whether their values are kept, never a value
    const current = row.state.status === 'registered' ? row.state : null;
    const matches = current === null || current.target === null ? [] : secretMatches(current.target, current.current);
    const kept = await readSecretStatus(deps.pool, [...new Set(matches.map((m) => m.target))]);
    const secrets = matches.map((m) => {
      const status = kept.get(m.target);
      return {
        ...m,
        status: status === undefined
          ? 'missing' as const
          : status.erased_at === null
          ? 'kept' as const
          : 'erased' as const,
      };
    });
    const targetVersion = device.target?.version ?? 0;
    const daySince = new Date(now.getTime() - 86_400_000).toISOString();
    const [drift, recent, events, facts, series, latest, logs] = await Promise.all([
      replayDrift(source, uuid, {}).catch((error: unknown) => {
        if (error instanceof ReplayError) return null;
        throw error;
      }),
      deps.devices.events(uuid, { afterVersion: 0, newestFirst: true, limit: SLIDER_EVENTS }),
      deps.devices.events(uuid, {
        ...(types.length === 0 ? {} : { types }),
        afterVersion: 0,
        ...(query.before === undefined ? {} : { beforeVersion: query.before }),
        newestFirst: true,
        limit: EVENTS_PAGE_SIZE,
      }),
      transportFacts(deps.pool, uuid, targetVersion),
      readMetricsSeries(deps.pool, uuid, { since: daySince, until: now.toISOString(), stepMs: 3_600_000 }),
      latestMetrics(deps.pool, uuid),
      readDeviceLogs(deps.pool, uuid, {
        since: daySince,
        until: now.toISOString(),
        limit: LOG_LINES,
        order: 'desc',
      }),
    ]);
    page(ctx, {
      title: device.device_name,
      section: 'fleet',
      liveStream: `aggregate_type=device&aggregate_id=${encodeURIComponent(uuid)}`,
      script: 'device.js',
      body: renderDevice({
        now,
        device,
        state,
        drift,
        eventInstants: recent.map((e) => Date.parse(e.timestamp)).reverse(),
        secrets,
        events: {
          types,
          before: query.before ?? null,
          events: events as unknown as DeviceInput['events']['events'],
          pageSize: EVENTS_PAGE_SIZE,
        },
        telemetry: {
          since: daySince,
          series: CHARTED_GAUGES.map((gauge) => ({
            gauge,
            points: series.flatMap((p) => (p[gauge] === null ? [] : [{ t: p.t, avg: p[gauge]!.avg }])),
          })).filter((s) => s.points.length > 0),
          latest: latest === null ? null : {
            reported_at: latest.reported_at,
            values: Object.fromEntries(metricGaugeNames.map((name) => [name, latest[name] ?? null])),
          },
          logs: logs.lines,
        },
        transport: {
          mqtt_mode: deps.mqtt?.mode ?? 'off',
          connected: deps.mqtt?.isConnected?.(uuid) ?? null,
          ...facts,
        },
      }),
    });
  });

  router.get('/provisioning-keys', async (ctx: Context) => {
    parseOr400(emptyPageQuery, ctx.query, 'query');
    page(ctx, {
      title: 'Provisioning keys',
      section: 'keys',
      liveStream: 'type=provisioning_key.created,provisioning_key.revoked,device.provisioned',
      body: renderKeys({ now: deps.clock(), keys: await deps.provisioningKeys.list() }),
    });
  });

  router.get('/webhooks', async (ctx: Context) => {
    parseOr400(emptyPageQuery, ctx.query, 'query');
    page(ctx, {
      title: 'Webhooks',
      section: 'webhooks',
      body: renderWebhooks({ now: deps.clock(), webhooks: await listWebhooks(deps.pool, { includeDeleted: false }) }),
    });
  });

  router.get('/webhooks/:id', async (ctx: Context) => {
    const id = uuidParam(ctx, 'id');
    const query = parseOr400(webhookPageQuery, ctx.query, 'query');
    const webhook = await getWebhook(deps.pool, id);
    if (webhook === null) throw new HttpError(404, 'webhook_not_found', `no webhook ${id}`);
    const deliveries = await listDeliveries(deps.pool, id, {
      ...(query.status === '' ? {} : { status: query.status }),
      limit: DELIVERIES_PAGE_SIZE,
      offset: query.offset,
    });
    page(ctx, {
      title: `Webhook ${webhook.url}`,
      section: 'webhooks',
      body: renderWebhookDeliveries({
        now: deps.clock(),
        webhook,
        deliveries,
        status: query.status,
        offset: query.offset,
        pageSize: DELIVERIES_PAGE_SIZE,
      }),
    });
  });

  router.get('/listeners', async (ctx: Context) => {
    const query = parseOr400(listenersPageQuery, ctx.query, 'query');
    const [listeners, letters] = await Promise.all([
      listenerStatuses(deps.pool),
      listDeadLetters(deps.pool, {
        ...(query.listener === '' ? {} : { listener: query.listener }),
        ...(query.status === '' ? {} : { status: query.status }),
        limit: 100,
      }),
    ]);
    page(ctx, {
      title: 'Listeners and dead letters',
      section: 'listeners',
      liveStream: '',
      body: renderListeners({ now: deps.clock(), listeners, letters, filter: query }),
    });
  });

  router.get('/events', (ctx: Context) => {
    const query = parseOr400(liveEventsPageQuery, ctx.query, 'query');
    page(ctx, { title: 'Live events', section: 'events', script: 'live-events.js', body: renderLiveEvents(query) });
  });

  router.get('/analytics', async (ctx: Context) => {
    const query = parseOr400(analyticsPageQuery, ctx.query, 'query');
    const windowMs = parseDuration(query.window)!;
    const analytics = await computeAnalytics(source, windowMs, 10);
    const label = (
      iso: string,
    ) => (windowMs <= 86_400_000 ? iso.slice(11, 16) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`);
    const series = async (type: string) =>
      (await eventSeries(deps.readPool, type, analytics.window, 24)).map((b) => ({
        from: b.from,
        label: `${label(b.from)} UTC`,
        value: b.count,
      }));
    page(ctx, {
      title: 'Analytics',
      section: 'analytics',
      body: renderAnalytics({
        now: deps.clock(),
        window: query.window,
        analytics,
        targetSeries: await series('target_state.updated'),
        reportSeries: await series('current_state.updated'),
      }),
    });
  });

  router.get('/integrity', async (ctx: Context) => {
    parseOr400(emptyPageQuery, ctx.query, 'query');
    const now = deps.clock();
    const [report, checks] = await Promise.all([
      partitionsReport(deps.pool, deps.retentionDays, now),
      latestIntegrityChecks(deps.pool, now, 10),
    ]);
    page(ctx, {
      title: 'Integrity and retention',
      section: 'integrity',
      body: renderIntegrity({ now, report, checks }),
    });
  });
}

/**
 * For a browser opening a console page, an error (an unknown device, a malformed query) as
 * an HTML page with the API's message; API clients and the page scripts still get JSON.
 */
export function htmlErrorPages() {
  return async function errorPage(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (error) {
      const browser = ctx.method === 'GET' && /\btext\/html\b/.test(ctx.get('Accept'));
      if (!(error instanceof HttpError) || !browser || error.status === 401) throw error;
      sendHtml(
        ctx,
        `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${error.status} · devicetrail console</title>
<link rel="stylesheet" href="${assetUrl('console.css')}"></head>
<body><main id="main"><h1>${error.status === 404 ? 'Not found' : 'Cannot show this page'}</h1>
<p class="error">${esc(error.message)} (${
          esc(error.code)
        })</p><p><a href="/">Back to the fleet</a></p></main></body></html>
`,
        error.status,
      );
    }
  };
}
