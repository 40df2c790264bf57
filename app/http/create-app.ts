// The Koa app factory: one error handler on top, the public routes, then the versioned
// routers, one per kind of caller, each behind its one guard, which runs before the JSON body
// is read (middleware/json-body.ts: a request without credentials never has its body parsed).
import Koa from 'koa';
import { Router } from '@koa/router';
import { adminRoutes } from './routes/admin-devices.ts';
import type { AppDeps } from './deps.ts';
import { deviceRoutes, registrationRoutes } from './routes/device.ts';
import { deviceLogBodies, deviceLogRoutes } from './routes/device-logs.ts';
import { errorHandler, HttpError } from './errors.ts';
import { feedRoutes } from './routes/feed.ts';
import { fleetRoutes } from './routes/fleet.ts';
import { guard, type Principal } from './middleware/auth.ts';
import { healthRoutes } from './routes/health.ts';
import { inputLimits } from './middleware/input-limits.ts';
import { type Logger, logRequests, silentLogger } from '../observability/logger.ts';
import { createMetrics, instrumentStore, type Metrics } from '../observability/metrics.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { openApiRoutes } from './openapi/openapi.ts';
import { provisioningKeyRoutes } from './routes/provisioning-keys.ts';
import {
  deviceEventsRateLimit,
  type RateLimits,
  registrationRateLimit,
  reportRateLimit,
} from './middleware/rate-limit.ts';
import { replayRoutes } from './routes/replay.ts';
import { requestDeadline } from './middleware/request-deadline.ts';
import { requestId } from './request.ts';
import { jsonBodies } from './middleware/json-body.ts';
import { routeDocs } from './openapi/route-docs.ts';
import { closeConnectionsWhenDraining, processShutdown, type ShutdownRegistry } from '../shutdown.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { consolePageRoutes, consolePublicRoutes, htmlErrorPages } from './routes/console-pages.ts';
import { consoleSessionRoutes } from './routes/console-session.ts';
import { integrityRoutes } from './routes/integrity.ts';
import { listenerRoutes } from './routes/listeners.ts';
import { signInRedirect } from './middleware/console-session.ts';
import { secretRoutes } from './routes/secrets.ts';
import { telemetryRoutes } from './routes/telemetry.ts';

/** Operational wiring; every field has a default suited to tests (silent logs, own metrics). */
export type AppOptions = {
  logger?: Logger;
  /** One log line per request (LOG_REQUESTS). */
  logRequests?: boolean;
  metrics?: Metrics;
  /** Besides admin tokens, this bearer token may read /metrics (METRICS_TOKEN). */
  metricsToken?: string;
  /** Readiness wants partitions for today and this many days ahead (PARTITION_DAYS_AHEAD). */
  partitionDaysAhead?: number;
  /** Whose draining flag readiness and keep-alive follow. */
  shutdown?: ShutdownRegistry;
  /** Per-device report and event limits, per-key registration limits (REPORT_RATE_LIMIT, DEVICE_EVENTS_RATE_LIMIT, REGISTER_RATE_LIMIT); none by default. */
  rateLimits?: RateLimits;
  /** A handler that has not answered by then gets a 503 (REQUEST_TIMEOUT); none by default. */
  requestTimeoutMs?: number;
  /** Peer addresses whose X-Request-Id is kept as sent (TRUSTED_PROXIES); none by default. */
  trustedProxies?: readonly string[];
};

/**
 * A router under /api/v1 whose every route, also one added later, answers only callers of
 * `type`; the JSON body is read after the guard let the caller through.
 */
function guardedRouter(type: Principal['type'], deps: AppDeps): Router {
  const router = new Router({ prefix: '/api/v1' });
  // the path '' and not none: on a prefixed router @koa/router 15 matches a path-less `use`
  // case-sensitively while its routes match case-insensitively, so GET /API/V1/DEVICES would
  // reach the route without the guard (test/reliability/auth-matrix.test.ts sends both spellings)
  router.use('', guard(type, deps), jsonBodies(deps.bodyLimitKb));
  return router;
}

/** Builds the app; tests drive `app.callback()` without opening a port. */
export function createApp(appDeps: AppDeps, options: AppOptions = {}): Koa {
  const app = new Koa({ proxy: false });
  const metrics = options.metrics ?? createMetrics({ pool: appDeps.pool, clock: appDeps.clock, defaultMetrics: false });
  const deps: AppDeps = { ...appDeps, store: instrumentStore(appDeps.store, metrics) };
  const shutdown = options.shutdown ?? processShutdown;
  app.use(requestId(options.trustedProxies ?? []));
  app.use(logRequests(options.logger ?? silentLogger(), { enabled: options.logRequests ?? true }));
  app.use(metrics.measureRequests());
  app.use(closeConnectionsWhenDraining(shutdown));
  app.use(
    errorHandler((error, ctx) =>
      deps.logError(`unexpected error on ${ctx.method} ${ctx.path} (request ${String(ctx.state['requestId'])})`, error)
    ),
  );
  app.use(deviceLogBodies()); // NDJSON log uploads are read by their route (issue #15)
  app.use(inputLimits()); // path and query here; bodies once read, after authentication
  if (options.requestTimeoutMs !== undefined) {
    app.use(
      requestDeadline(
        options.requestTimeoutMs,
        (error, ctx) => deps.logError(`request ${String(ctx.state['requestId'])} failed after its deadline`, error),
      ),
    );
  }

  const routeErrors = {
    throw: true,
    notImplemented: () => new HttpError(501, 'not_implemented', 'method not implemented'),
    methodNotAllowed: () => new HttpError(405, 'method_not_allowed', 'method not allowed on this path'),
  };
  // public, or (/metrics) with its own rule
  const root = new Router();
  healthRoutes(root, deps, { partitionDaysAhead: options.partitionDaysAhead ?? 7, draining: () => shutdown.draining });
  metricsRoutes(root, deps, metrics, options.metricsToken);
  openApiRoutes(root, routeDocs);
  consolePublicRoutes(root, deps);

  // the guard is each router's first layer, so a rate limit counts authenticated callers only
  // and runs before the route reads the body (README "Rate limits")
  const registration = guardedRouter('provisioning_key', deps);
  registrationRateLimit(registration, deps, options.rateLimits?.registrations);
  registrationRoutes(registration, deps);

  const device = guardedRouter('device', deps);
  reportRateLimit(device, deps, options.rateLimits?.reports);
  deviceEventsRateLimit(device, deps, options.rateLimits?.deviceEvents);
  deviceRoutes(device, deps);
  deviceLogRoutes(device, deps, options.rateLimits?.deviceLogs);

  const admin = guardedRouter('admin', deps);
  adminRoutes(admin, deps);
  provisioningKeyRoutes(admin, deps);
  webhookRoutes(admin, deps);
  feedRoutes(admin, deps);
  fleetRoutes(admin, deps);
  replayRoutes(admin, deps);
  listenerRoutes(admin, deps);
  integrityRoutes(admin, deps);
  telemetryRoutes(admin, deps);
  secretRoutes(admin, deps);

  // the admin console (issue #17): pages at / and its session, for admins (a session cookie or
  // an admin token); a browser without a session is sent to /sign-in
  const adminConsole = new Router();
  adminConsole.use(htmlErrorPages(), signInRedirect(deps), guard('admin', deps), jsonBodies(deps.bodyLimitKb));
  consoleSessionRoutes(adminConsole, deps);
  consolePageRoutes(adminConsole, deps);

  // a router's guard runs only for requests one of its routes matches; the routers record what
  // they matched on ctx.matched together, so each allowedMethods sees every router's methods
  for (const router of [root, registration, device, admin, adminConsole]) {
    app.use(router.routes());
    app.use(router.allowedMethods(routeErrors));
  }
  // sets (not throws) the 404 so allowedMethods, which runs after it, can turn it into a 405
  app.use(async function notFound(ctx) {
    ctx.status = 404;
    ctx.body = { error: { code: 'not_found', message: `no endpoint ${ctx.method} ${ctx.path}` } };
  });
  return app;
}
