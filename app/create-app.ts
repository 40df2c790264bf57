// The Koa app factory: one error handler on top, JSON-only bodies, the versioned router.
import Koa from 'koa';
import { Router } from '@koa/router';
import bodyParser from 'koa-bodyparser';
import { adminRoutes } from './admin-routes.ts';
import type { AppDeps } from './deps.ts';
import { deviceRoutes } from './device-routes.ts';
import { errorHandler, HttpError } from './errors.ts';
import { provisioningKeyRoutes } from './provisioning-key-routes.ts';
import { requestId, requireJsonBody } from './request.ts';

/** Builds the app; tests drive `app.callback()` without opening a port. */
export function createApp(deps: AppDeps): Koa {
  const app = new Koa({ proxy: false });
  app.use(errorHandler((error, ctx) => deps.logError(`unexpected error on ${ctx.method} ${ctx.path} (request ${String(ctx.state['requestId'])})`, error)));
  app.use(requestId());
  app.use(requireJsonBody());
  app.use(bodyParser({
    enableTypes: ['json'],
    jsonLimit: `${deps.bodyLimitKb}kb`,
    strict: true,
    // let the error handler shape the response
    onerror: (error) => { throw error; },
  }));

  const api = new Router({ prefix: '/api/v1' });
  deviceRoutes(api, deps);
  adminRoutes(api, deps);
  provisioningKeyRoutes(api, deps);
  app.use(api.routes());
  app.use(api.allowedMethods({
    throw: true,
    notImplemented: () => new HttpError(501, 'not_implemented', 'method not implemented'),
    methodNotAllowed: () => new HttpError(405, 'method_not_allowed', 'method not allowed on this path'),
  }));
  // sets (not throws) the 404 so allowedMethods, which runs after it, can turn it into a 405
  app.use(async function notFound(ctx) {
    ctx.status = 404;
    ctx.body = { error: { code: 'not_found', message: `no endpoint ${ctx.method} ${ctx.path}` } };
  });
  return app;
}
