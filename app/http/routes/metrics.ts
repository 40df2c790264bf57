// GET /metrics: the Prometheus text exposition, for an admin token or METRICS_TOKEN.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { bearerSecret, requireAdmin } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import type { Metrics } from '../../observability/metrics.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Registers GET /metrics on a router without prefix. */
export function metricsRoutes(router: Router, deps: AppDeps, metrics: Metrics, metricsToken: string | undefined): void {
  const tokenDigest = metricsToken === undefined ? null : digest(metricsToken);
  router.get('/metrics', async (ctx: Context) => {
    const secret = bearerSecret(ctx);
    // compared as digests so the comparison takes the same time whatever the length
    const isMetricsToken = tokenDigest !== null && timingSafeEqual(digest(secret), tokenDigest);
    if (!isMetricsToken) await requireAdmin(ctx, deps);
    ctx.set('Content-Type', metrics.registry.contentType);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await metrics.exposition();
  });
}
