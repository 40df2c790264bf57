// Listeners and their dead letters, for admins (the console's "Listeners" page; the same
// operations as `npm run admin -- listeners` and `dead-letters …`):
//   GET  /api/v1/listeners                   every listener's checkpoint, owner, lag, open dead letters
//   GET  /api/v1/dead-letters                dead letters, newest first (listener, status, limit)
//   POST /api/v1/dead-letters/redeliver      {ids?, listener?, all?}: the running listener retries them
//   POST /api/v1/dead-letters/discard        {ids?, listener?, all?}: give up on them
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { z } from 'zod';
import {
  discardDeadLetters,
  listDeadLetters,
  listenerStatuses,
  requestRedelivery,
} from '../../../infra/realtime/listener-store.ts';
import type { AppDeps } from '../deps.ts';
import { parseOr400 } from '../errors.ts';
import { intQuery, jsonBody } from '../request.ts';

/** Query of GET /dead-letters. */
export const deadLetterQuery = z.object({
  listener: z.string().min(1).max(200).optional(),
  status: z.enum(['dead', 'redeliver', 'redelivered', 'discarded']).optional(),
  limit: intQuery(1, 1000).default(100),
}).strict();

/** Body of POST /dead-letters/redeliver and /discard: which letters (at least one way of choosing). */
export const deadLetterSelectionBody = z.object({
  ids: z.array(z.number().int().min(1).max(Number.MAX_SAFE_INTEGER)).min(1).max(1000).optional(),
  listener: z.string().min(1).max(200).optional(),
  all: z.literal(true).optional(),
}).strict().refine(
  (b) => b.ids !== undefined || b.listener !== undefined || b.all === true,
  'give ids, a listener, or all: true',
);

/** Registers the listener endpoints on the admin router (its guard authenticates). */
export function listenerRoutes(router: Router, deps: AppDeps): void {
  router.get('/listeners', async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { listeners: await listenerStatuses(deps.pool) };
  });

  router.get('/dead-letters', async (ctx: Context) => {
    const query = parseOr400(deadLetterQuery, ctx.query, 'query');
    ctx.body = { dead_letters: await listDeadLetters(deps.pool, query) };
  });

  router.post('/dead-letters/redeliver', async (ctx: Context) => {
    const body = parseOr400(deadLetterSelectionBody, jsonBody(ctx));
    // only letters still dead are queued; the running listener of each is woken (NOTIFY trigger)
    ctx.body = { requested: await requestRedelivery(deps.pool, { ids: body.ids, listener: body.listener }) };
  });

  router.post('/dead-letters/discard', async (ctx: Context) => {
    const body = parseOr400(deadLetterSelectionBody, jsonBody(ctx));
    ctx.body = { discarded: await discardDeadLetters(deps.pool, { ids: body.ids, listener: body.listener }) };
  });
}
