// GET /api/v1/fleet/summary (admin): devices by fleet and type, active/inactive, in sync/
// drifting, from the device_summary projection, with its lag and every listener's.
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import { listenerStatuses } from '../../../infra/realtime/listener-store.ts';
import { deviceSummaryProjection, readDeviceSummary } from '../../../infra/realtime/projections/device-summary.ts';
import type { AppDeps } from '../deps.ts';
import { parseOr400 } from '../errors.ts';

/** Query of GET /fleet/summary. */
export const fleetSummaryQuery = z.object({ fleet: z.string().min(1).max(128).optional() }).strict();

// a request catches the projection up by at most this many events; the background job does the rest
const CATCH_UP_PER_REQUEST = 5000;

/** Registers the fleet summary endpoint on the admin router (its guard authenticates). */
export function fleetRoutes(router: Router, deps: AppDeps): void {
  router.get('/fleet/summary', async (ctx: Context) => {
    const query = parseOr400(fleetSummaryQuery, ctx.query, 'query');
    const projection = deviceSummaryProjection(deps.pool);
    // read-your-writes: fold what is committed before answering; a failing event shows up
    // as the projection's last_error and lag, not as a failed request
    await projection.process({ maxEvents: CATCH_UP_PER_REQUEST }).catch((error: unknown) =>
      deps.logError('device_summary projection failed', error)
    );
    const [summary, status, listeners] = await Promise.all([
      readDeviceSummary(deps.pool, projection.definition, query.fleet),
      projection.status(),
      listenerStatuses(deps.pool),
    ]);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      ...(query.fleet === undefined ? {} : { fleet: query.fleet }),
      ...summary,
      projection: status,
      listeners,
    };
  });
}
