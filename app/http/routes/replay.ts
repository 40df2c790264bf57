// Time travel over HTTP, for admins: a device's state at an instant, its drift intervals,
// what changed between two instants, its timeline page, the fleet at an instant, and the
// seed's analytics. Same operations as `npm run replay`, on the same fold.
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import {
  activity,
  analyticsWindow,
  computeAnalytics,
  driftingNow,
  reconciliationStats,
} from '../../../domain/replay/analytics.ts';
import { driftReportPausing } from '../../../domain/replay/drift.ts';
import { createReplayQueries } from '../../../infra/replay/queries.ts';
import { replayDiff, replayDrift, replayFleet, replayHistory, replayState } from '../../../domain/replay/service.ts';
import { ReplayError } from '../../../domain/replay/source.ts';
import { parseDuration } from '../../../domain/replay/time.ts';
import { renderTimeline } from '../../html/timeline.ts';
import { timelineLogs } from '../../html/timeline-logs.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError, parseOr400 } from '../errors.ts';
import { instantSchema, intQuery, uuidParam } from '../request.ts';

/** Query of GET /devices/:uuid/state. */
export const stateQuery = z.object({ at: instantSchema.optional() }).strict();
/** Query of GET /devices/:uuid/drift and /timeline. */
export const rangeQuery = z.object({ since: instantSchema.optional(), until: instantSchema.optional() }).strict();
/** Query of GET /devices/:uuid/timeline: the range, and `logs`, a window of device logs around each drift start. */
export const timelineQuery = rangeQuery.extend({
  logs: z.string().max(32).refine((w) => parseDuration(w) !== null, 'must be a duration such as 30s, 5m or 1h')
    .optional(),
}).strict();
/** Query of GET /devices/:uuid/diff. */
export const diffQuery = z.object({ from: instantSchema, to: instantSchema.optional() }).strict();
/** Query of GET /fleet/status. */
export const fleetQuery = z.object({ at: instantSchema.optional(), fleet: z.string().min(1).max(128).optional() })
  .strict();
/** Query of the GET /analytics endpoints. */
export const analyticsQuery = z.object({
  window: z.string().max(32).refine((w) => parseDuration(w) !== null, 'must be a duration such as 90s, 15m, 24h or 7d')
    .default('24h'),
  top: intQuery(1, 1000).default(10),
}).strict();

/** Maps replay's errors to HTTP: unknown device or an instant before it existed → 404, before the retention horizon → 410. */
async function mapped<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof ReplayError)) throw error;
    const status = error.code === 'invalid_range' ? 400 : error.code === 'before_retention_horizon' ? 410 : 404;
    throw new HttpError(
      status,
      error.code === 'invalid_range' ? 'invalid_request' : error.code,
      error.message,
      error.details,
    );
  }
}

/** Registers the replay and analytics endpoints on the admin router (its guard authenticates). */
export function replayRoutes(router: Router, deps: AppDeps): void {
  // on the replica when there is one: the log as of now, not the caller's own write
  const source = createReplayQueries(deps.readPool, { clock: deps.clock });

  router.get('/devices/:uuid/state', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(stateQuery, ctx.query, 'query');
    ctx.body = (await mapped(() => replayState(source, uuid, query.at ?? source.now()))).view;
  });

  router.get('/devices/:uuid/drift', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(rangeQuery, ctx.query, 'query');
    const { device, ...report } = await mapped(() => replayDrift(source, uuid, query));
    ctx.body = { uuid: device.uuid, device_name: device.device_name, ...report };
  });

  router.get('/devices/:uuid/diff', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const query = parseOr400(diffQuery, ctx.query, 'query');
    const { device, ...report } = await mapped(() => replayDiff(source, uuid, query.from, query.to ?? source.now()));
    ctx.body = { uuid: device.uuid, device_name: device.device_name, ...report };
  });

  router.get('/devices/:uuid/timeline', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const { logs: logsWindow, ...query } = parseOr400(timelineQuery, ctx.query, 'query');
    const { device, history } = await mapped(() => replayHistory(source, uuid, query));
    const drift = await driftReportPausing(history, source.pause!);
    // what the device logged around each drift start (issue #15), when asked for
    const logs = logsWindow === undefined
      ? undefined
      : await timelineLogs(deps.readPool, uuid, drift, parseDuration(logsWindow)!);
    ctx.type = 'text/html; charset=utf-8';
    ctx.set(
      'Content-Security-Policy',
      "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
    );
    ctx.body = renderTimeline({
      device,
      history,
      drift,
      generatedAt: deps.clock().toISOString(),
      sourceDescription: 'the devicetrail API',
      logs,
    });
  });

  router.get('/fleet/status', async (ctx: Context) => {
    const query = parseOr400(fleetQuery, ctx.query, 'query');
    ctx.body = await mapped(() => replayFleet(source, query.at ?? source.now(), { fleet: query.fleet }));
  });

  router.get('/analytics', async (ctx: Context) => {
    const query = parseOr400(analyticsQuery, ctx.query, 'query');
    ctx.body = await computeAnalytics(source, parseDuration(query.window)!, query.top);
  });

  router.get('/analytics/target-changes', async (ctx: Context) => {
    const query = parseOr400(analyticsQuery, ctx.query, 'query');
    const window = analyticsWindow(source, parseDuration(query.window)!);
    ctx.body = { window, ...await activity(source, 'target_state.updated', window, query.top) };
  });

  router.get('/analytics/reports', async (ctx: Context) => {
    const query = parseOr400(analyticsQuery, ctx.query, 'query');
    const window = analyticsWindow(source, parseDuration(query.window)!);
    ctx.body = { window, ...await activity(source, 'current_state.updated', window, query.top) };
  });

  router.get('/analytics/reconciliation', async (ctx: Context) => {
    const query = parseOr400(analyticsQuery, ctx.query, 'query');
    const window = analyticsWindow(source, parseDuration(query.window)!);
    ctx.body = { window, ...await reconciliationStats(source, window, query.top) };
  });

  router.get('/analytics/drifting', async (ctx: Context) => {
    parseOr400(z.object({}).strict(), ctx.query, 'query');
    ctx.body = await driftingNow(source);
  });
}
