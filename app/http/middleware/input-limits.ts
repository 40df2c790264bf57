// Limits every request is held to before any route sees it, whatever its schema: the body's
// size (BODY_LIMIT_KB, 413, enforced by the body parser), and its shape (nesting depth, keys per
// object, items per array, characters per string, no NUL or unpaired surrogates, which
// PostgreSQL cannot store), and NUL-free query strings and paths. Each breach is a 400 that
// names where it is. Field-level limits (lengths, counts of apps, services, events, config
// keys) are in the routes' zod schemas; README "Limits" lists them all.
import type { Context, Next } from 'koa';
import { HttpError } from '../errors.ts';
import { assertStorableJson } from '../request.ts';

/** The shape limits, documented in README "Limits". */
export const INPUT_LIMITS = {
  /** Levels of nesting in a JSON body (the same bound jsonBody() applies). */
  maxDepth: 32,
  maxKeysPerObject: 1000,
  maxItemsPerArray: 1000,
  maxStringLength: 65_536,
} as const;

const invalid = (message: string) => new HttpError(400, 'invalid_request', message);

/**
 * Throws a 400 naming the first place where `body` breaks a shape limit or cannot be stored
 * (NUL, lone surrogates, depth): one walk (request.ts), after which jsonBody() takes the body as checked.
 */
export function assertWithinLimits(body: unknown): void {
  assertStorableJson(body, 'body', INPUT_LIMITS);
}

/**
 * Koa middleware: NUL-free query and path for every request, and the shape limits on a body
 * already read (none is when it runs app-wide: bodies are read after authentication, where
 * middleware/json-body.ts applies assertWithinLimits).
 */
export function inputLimits() {
  return async function checkInputLimits(ctx: Context, next: Next): Promise<void> {
    if (/%00/.test(ctx.path)) throw invalid('path: NUL characters are not allowed');
    for (const [name, value] of Object.entries(ctx.query)) {
      if (name.includes('\u0000')) throw invalid('query: NUL characters are not allowed in parameter names');
      for (const v of Array.isArray(value) ? value : [value ?? '']) {
        if (v.includes('\u0000')) throw invalid(`query.${name}: NUL characters are not allowed`);
      }
    }
    const body = (ctx.request as { body?: unknown }).body;
    if (body !== undefined) assertWithinLimits(body);
    await next();
  };
}
