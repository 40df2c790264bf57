// Per-request helpers: request id, JSON body rules, event metadata, common parameters.
import { randomUUID } from 'node:crypto';
import type { Context, Next } from 'koa';
import { z } from 'zod';
import type { Actor, EventMetadata } from '../../domain/recorded-event.ts';
import { HttpError } from './errors.ts';
import { UUID_PATTERN } from '../../domain/ids.ts';

/** A device uuid: 8-4-4-4-12 hex (any version, as the seed's example is not RFC 4122). */
export const uuidSchema = z.string().regex(UUID_PATTERN, 'must be a uuid (8-4-4-4-12 hex digits)').transform((s) =>
  s.toLowerCase()
);

/** An ISO-8601 instant with a time zone, returned normalised to UTC. */
export const instantSchema = z.string().max(64).refine(
  (s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)),
  'must be an ISO-8601 timestamp with a time zone, e.g. 2026-11-27T10:00:00Z',
).transform((s) => new Date(s).toISOString());

/** The largest page offset any list takes. */
export const MAX_OFFSET = 1_000_000;

/**
 * A whole-number query parameter from `min` to `max`, written as plain digits. Anything else
 * ("1e308", "99999999999999999999", "0x10", "") is a 400 naming the parameter, so no number
 * reaches PostgreSQL out of its range (issue #16, finding 9: those were 500s).
 */
export function intQuery(min: number, max: number) {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max)) {
    throw new Error('intQuery: bounds must be safe integers');
  }
  const message = `must be a whole number from ${min} to ${max}`;
  return z.preprocess(
    (value) => (typeof value === 'string' && /^\d{1,16}$/.test(value) ? Number(value) : value),
    z.number({ invalid_type_error: message }).int(message).min(min, message).max(max, message),
  );
}

/** The uuid in a route parameter, or a 400. */
export function uuidParam(ctx: Context, name = 'uuid'): string {
  const value = (ctx as unknown as { params: Record<string, string> }).params[name];
  const result = uuidSchema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'invalid_request', `path parameter ${name}: must be a uuid`);
  return result.data;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** An IPv4 peer as Node reports it on a dual-stack socket (::ffff:10.0.0.1) → 10.0.0.1. */
const plainAddress = (address: string): string => address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

/**
 * Gives each request an id and echoes it in X-Request-Id. A sane incoming X-Request-Id is kept
 * as sent only from a trusted proxy (TRUSTED_PROXIES: the peer address is one of them); from
 * anyone else it gets a suffix unique to this request (`<id>.<process>-<n>`), so a caller can
 * still find its own id in the logs but two requests never share one (issue #16, finding 12).
 * Without a sane one, a new uuid.
 */
export function requestId(trustedProxies: readonly string[] = []) {
  const trusted = new Set(trustedProxies.map(plainAddress));
  const processPart = randomUUID().slice(0, 8);
  let sequence = 0;
  return async function assignRequestId(ctx: Context, next: Next): Promise<void> {
    const incoming = ctx.get('X-Request-Id');
    let id: string;
    if (!REQUEST_ID.test(incoming)) id = randomUUID();
    else if (trusted.has(plainAddress(ctx.request.socket.remoteAddress ?? ''))) id = incoming;
    else {
      sequence += 1;
      id = `${incoming}.${processPart}-${sequence.toString(36)}`;
    }
    ctx.state['requestId'] = id;
    ctx.set('X-Request-Id', id);
    await next();
  };
}

/**
 * 415 for a body that is not JSON; runs before the body parser. A request whose route reads
 * its own body (`ctx.disableBodyParser`, set before this runs: device log uploads, NDJSON)
 * is left to that route, which checks its own types.
 */
export function requireJsonBody() {
  return async function checkContentType(ctx: Context, next: Next): Promise<void> {
    if ((ctx as { disableBodyParser?: boolean }).disableBodyParser === true) return await next();
    const hasBody = ctx.request.length > 0 || ctx.get('Transfer-Encoding') !== '';
    if (['POST', 'PUT', 'PATCH'].includes(ctx.method) && hasBody && !ctx.is('application/json', '+json')) {
      throw new HttpError(
        415,
        'unsupported_media_type',
        `request body must be JSON (Content-Type: application/json), got "${ctx.get('Content-Type') || 'none'}"`,
      );
    }
    await next();
  };
}

const MAX_DEPTH = 32;

/** Size limits a walk may also check (middleware/input-limits.ts: INPUT_LIMITS). */
export type ShapeLimits = { maxKeysPerObject: number; maxItemsPerArray: number; maxStringLength: number };

/** Bodies already walked by assertStorableJson with the shape limits: jsonBody() does not walk them again. */
const checkedBodies = new WeakSet<object>();

/**
 * PostgreSQL's jsonb cannot store NUL characters or lone surrogates; refuse them up front
 * (400, not a 500 from the database). Also bounds nesting depth and, given `limits`, the
 * sizes of strings, keys, objects and arrays. One walk; a path is spelled out only for the
 * 400 that names it (a body's walk on the ingest path builds no strings; issue #19).
 */
export function assertStorableJson(value: unknown, root = 'body', limits: ShapeLimits | null = null): void {
  walkValue({ root, keys: [], limits }, value, 0);
  if (limits !== null && value !== null && typeof value === 'object') checkedBodies.add(value);
}

// The walk's steps are module functions sharing one small record, not closures made per call:
// under tsx each closure made costs a `__name` call besides (0.7 % of a report's CPU profile).
type Walk = { root: string; keys: (string | number)[]; limits: ShapeLimits | null };

function walkFail(walk: Walk, message: string, suffix = ''): never {
  throw new HttpError(400, 'invalid_request', `${[walk.root, ...walk.keys].join('.')}${suffix}: ${message}`);
}

function walkString(walk: Walk, s: string, isKey: boolean): void {
  if (s.includes('\u0000')) walkFail(walk, 'NUL characters are not allowed', isKey ? ' (key)' : '');
  if (!s.isWellFormed()) walkFail(walk, 'contains an unpaired UTF-16 surrogate', isKey ? ' (key)' : '');
  if (walk.limits !== null && s.length > walk.limits.maxStringLength) {
    walkFail(walk, `${isKey ? 'a key longer' : 'longer'} than ${walk.limits.maxStringLength} characters`);
  }
}

function walkValue(walk: Walk, node: unknown, depth: number): void {
  if (depth > MAX_DEPTH) walkFail(walk, `nested more than ${MAX_DEPTH} levels deep`);
  if (typeof node === 'string') {
    walkString(walk, node, false);
  } else if (Array.isArray(node)) {
    if (walk.limits !== null && node.length > walk.limits.maxItemsPerArray) {
      walkFail(walk, `more than ${walk.limits.maxItemsPerArray} items`);
    }
    for (let i = 0; i < node.length; i += 1) {
      walk.keys.push(i);
      walkValue(walk, node[i], depth + 1);
      walk.keys.pop();
    }
  } else if (node !== null && typeof node === 'object') {
    const names = Object.keys(node);
    if (walk.limits !== null && names.length > walk.limits.maxKeysPerObject) {
      walkFail(walk, `more than ${walk.limits.maxKeysPerObject} keys`);
    }
    for (const name of names) {
      walkString(walk, name, true);
      walk.keys.push(name);
      walkValue(walk, (node as Record<string, unknown>)[name], depth + 1);
      walk.keys.pop();
    }
  }
}

/** The parsed JSON body, checked for storability (once: the body reader's walk counts). */
export function jsonBody(ctx: Context): unknown {
  const body = (ctx.request as unknown as { body?: unknown }).body;
  if (body === null || typeof body !== 'object' || !checkedBodies.has(body)) assertStorableJson(body);
  return body;
}

/** Metadata for events caused by this request (DESIGN.md "Metadata"). */
export function requestMetadata(ctx: Context, actor: Actor, extra: Record<string, unknown> = {}): EventMetadata {
  const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute;
  return {
    ip_address: ctx.ip || null,
    user_agent: ctx.get('User-Agent').slice(0, 512) || null,
    endpoint: typeof route === 'string' ? route : ctx.path,
    request_id: (ctx.state['requestId'] as string | undefined) ?? null,
    actor,
    ...extra,
  };
}
