// The event log's retention and integrity, for admins (the console's "Integrity" page; the
// same reports as `npm run admin -- partitions` and `npm run replay -- verify`):
//   GET  /api/v1/partitions          day partitions with rows and sizes, the retention horizon
//   GET  /api/v1/integrity/checks    the last hash-chain checks and their results
//   POST /api/v1/integrity/checks    runs a check of every chain (one at a time): 200 with the
//                                    result when it ends within CHECK_WAIT_MS, else 202 while it runs on
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import {
  integrityCheck,
  latestIntegrityChecks,
  startIntegrityCheck,
} from '../../../infra/event-store/integrity-checks.ts';
import { partitionsReport } from '../../cli/partitions.ts';
import { callerOf } from '../middleware/auth.ts';
import type { AppDeps } from '../deps.ts';
import { parseOr400 } from '../errors.ts';
import { intQuery } from '../request.ts';

/** Query of GET /integrity/checks. */
export const checksQuery = z.object({ limit: intQuery(1, 100).default(10) }).strict();

// a small log is checked within the request; a large one goes on in the background
const CHECK_WAIT_MS = 5000;

/** Registers the retention and integrity endpoints on the admin router (its guard authenticates). */
export function integrityRoutes(router: Router, deps: AppDeps): void {
  router.get('/partitions', async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await partitionsReport(deps.pool, deps.retentionDays, deps.clock());
  });

  router.get('/integrity/checks', async (ctx: Context) => {
    const query = parseOr400(checksQuery, ctx.query, 'query');
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { checks: await latestIntegrityChecks(deps.pool, deps.clock(), query.limit) };
  });

  router.post('/integrity/checks', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const { check, started, done } = await startIntegrityCheck(deps.pool, {
      startedBy: admin.id,
      now: deps.clock(),
      clock: deps.clock,
      onError: deps.logError,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finished = await Promise.race([
      done.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CHECK_WAIT_MS))),
    ]);
    clearTimeout(timer);
    const latest = finished ? await integrityCheck(deps.pool, check.id, deps.clock()) : null;
    ctx.status = latest !== null && latest.status !== 'running' ? 200 : 202;
    ctx.set('Location', '/api/v1/integrity/checks');
    ctx.body = { check: latest ?? check, started };
  });
}
