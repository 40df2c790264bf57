// Reading a request's JSON body, as a layer of each guarded router right after its guard
// (app/http/create-app.ts), never before: a request without valid credentials is refused from
// its headers alone (401, or 429 over the failed-authentication limit) and its body is never
// parsed, walked or buffered (issue #16, finding 6: a 254 KB array without credentials cost
// 17-64 ms of CPU to parse and walk before its 400). Node discards such a body as it arrives,
// within HTTP_BODY_TIMEOUT. Public routes take no body at all.
//
// For authenticated callers: 415 unless the body is JSON (application/json or any +json type,
// which is then parsed as JSON too), BODY_LIMIT_KB after gzip, deflate or br decoding (413;
// a decompression bomb stops at the limit), 400 for invalid JSON, then the shape limits of
// middleware/input-limits.ts. A route that reads its own body (ctx.disableBodyParser, set
// before this runs: device log uploads) is left to it.
import type { Context, Next } from 'koa';
import { bodyParser } from '@koa/bodyparser';
import { requireJsonBody } from '../request.ts';
import { assertWithinLimits } from './input-limits.ts';

/** The media types parsed as JSON: application/json and every structured-syntax +json type (RFC 6839). */
export const JSON_TYPES = ['application/json', '+json'];

/** Methods whose bodies are read (all of them: a GET or DELETE body is held to the same rules). */
export const PARSED_METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** The middleware: content type, parse within `limitKb`, shape limits. */
export function jsonBodies(limitKb: number) {
  const checkType = requireJsonBody();
  const parse = bodyParser({
    enableTypes: ['json'],
    // merged index by index with the package's own list, so the first two replace its first two
    extendTypes: { json: JSON_TYPES },
    jsonLimit: `${limitKb}kb`,
    jsonStrict: true,
    // every method, as koa-bodyparser 4 did (the package's default is POST, PUT and PATCH)
    parsedMethods: PARSED_METHODS,
    // no onError: a parse error is thrown to the error handler, which shapes the response
  });
  return async function readJsonBody(ctx: Context, next: Next): Promise<void> {
    await checkType(ctx, () =>
      parse(ctx, async () => {
        const body = (ctx.request as { body?: unknown }).body;
        if (body !== undefined) assertWithinLimits(body);
        await next();
      }));
  };
}
