// Authentication: a bearer secret resolves to one principal; each router accepts one kind,
// checked once by its guard (app/http/create-app.ts). 401: no or unknown credentials.
// 403: known credentials, wrong kind or not allowed.
import type { Context, Next } from 'koa';
import type { ProvisioningKeyState } from '../../../domain/provisioning-key/decider.ts';
import { ADMIN_TOKEN_PREFIX, PROVISIONING_KEY_PREFIX } from '../../../infra/devices/credentials.ts';
import type { Actor } from '../../../domain/recorded-event.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { consoleSessionOf, sessionSecretOf } from './console-session.ts';

/** Who is calling. */
export type Principal =
  | { type: 'admin'; id: string; name: string }
  | { type: 'device'; uuid: string }
  | { type: 'provisioning_key'; id: string; state: ProvisioningKeyState };

const unauthorized = (message: string) =>
  new HttpError(401, 'unauthorized', message, undefined, { 'WWW-Authenticate': 'Bearer realm="devicetrail"' });

/**
 * The bearer secret of a request; throws 401 when missing or malformed. The scheme is matched
 * case-insensitively (`bearer`, `BEARER`: RFC 7235 section 2.1), the token exactly.
 */
export function bearerSecret(ctx: Context): string {
  const header = ctx.get('Authorization');
  if (header === '') throw unauthorized('missing Authorization header (expected "Bearer <token>")');
  const match = /^bearer +([\x21-\x7e]{1,512})$/i.exec(header);
  if (match === null) throw unauthorized('malformed Authorization header (expected "Bearer <token>")');
  return match[1]!;
}

/**
 * The device agent's credential header (issue #15): its device key, taken on the device
 * router only (`acceptDeviceHeader`), and looked up as a device key whatever it starts with.
 * Empty counts as absent (older agents send it empty; they get the 401 of a missing
 * credential: no device call works without one).
 */
function deviceKeyHeader(ctx: Context): string | null {
  const value = ctx.get('X-Device-API-Key');
  if (value === '') return null;
  if (!/^[\x21-\x7e]{1,512}$/.test(value)) throw unauthorized('malformed X-Device-API-Key header');
  return value;
}

/**
 * The secret a request tries, as its failures are counted (middleware/auth-throttle.ts): the
 * device key header's, the Authorization header's after its scheme, or the session cookie's;
 * null when it carries none.
 */
function triedSecret(ctx: Context, deps: AppDeps, acceptDeviceHeader: boolean): string | null {
  const deviceHeader = acceptDeviceHeader ? ctx.get('X-Device-API-Key') : '';
  if (deviceHeader !== '') return deviceHeader;
  const authorization = ctx.get('Authorization');
  if (authorization !== '') return authorization.replace(/^\S+\s+/, '');
  return sessionSecretOf(ctx, deps);
}

/**
 * Resolves the caller from the bearer secret's prefix and a hash lookup; 401 when unknown.
 * A request without an Authorization header may instead carry an admin console session
 * cookie (middleware/console-session.ts), which acts as the admin token that opened it.
 * Failed attempts are throttled (deps.authThrottle): over the limit, a 429 with Retry-After
 * comes before any lookup; a 401 for a credential that was tried counts one failure.
 */
export async function authenticate(ctx: Context, deps: AppDeps, acceptDeviceHeader = false): Promise<Principal> {
  const cached = ctx.state['principal'] as Principal | undefined;
  if (cached !== undefined) return cached;
  const throttle = deps.authThrottle;
  if (throttle === null) return resolvePrincipal(ctx, deps, acceptDeviceHeader);
  const address = ctx.request.socket.remoteAddress ?? '';
  const tried = triedSecret(ctx, deps, acceptDeviceHeader);
  const over = throttle.check(address, tried);
  if (over !== null) {
    const per = over.rate.windowMs % 60_000 === 0
      ? `${over.rate.windowMs / 60_000} min`
      : `${over.rate.windowMs / 1000} s`;
    throw new HttpError(
      429,
      'too_many_failed_authentications',
      `too many failed authentications from this ${over.by}: at most ${over.rate.limit} per ${per}; retry in ${over.wait} s`,
      { limit: over.rate.limit, window_ms: over.rate.windowMs, retry_after_s: over.wait },
      { 'Retry-After': String(over.wait) },
    );
  }
  try {
    return await resolvePrincipal(ctx, deps, acceptDeviceHeader);
  } catch (error) {
    if (error instanceof HttpError && error.status === 401 && tried !== null) throttle.fail(address, tried);
    throw error;
  }
}

/** Counts a failed guess that did not go through `authenticate` (a register conflict on another device's key). */
export function countFailedGuess(ctx: Context, deps: AppDeps, secret: string): void {
  deps.authThrottle?.fail(ctx.request.socket.remoteAddress ?? '', secret);
}

async function resolvePrincipal(ctx: Context, deps: AppDeps, acceptDeviceHeader: boolean): Promise<Principal> {
  const headerKey = acceptDeviceHeader ? deviceKeyHeader(ctx) : null;
  if (headerKey !== null) {
    if (ctx.get('Authorization') !== '' && bearerSecret(ctx) !== headerKey) {
      throw unauthorized('Authorization and X-Device-API-Key carry different credentials');
    }
    const uuid = await deps.deviceKeys.findDevice(headerKey);
    if (uuid === null) throw unauthorized('unknown or revoked credentials');
    const principal: Principal = { type: 'device', uuid };
    ctx.state['principal'] = principal;
    ctx.state['credential'] = { kind: 'bearer', secret: headerKey };
    return principal;
  }
  if (ctx.get('Authorization') === '') {
    const signedIn = await consoleSessionOf(ctx, deps);
    if (signedIn !== null) {
      const principal: Principal = { type: 'admin', ...signedIn.session.admin };
      ctx.state['principal'] = principal;
      ctx.state['credential'] = { kind: 'session', secret: signedIn.secret };
      return principal;
    }
  }
  const secret = bearerSecret(ctx);
  let principal: Principal | null = null;
  if (secret.startsWith(ADMIN_TOKEN_PREFIX)) {
    const token = await deps.adminTokens.find(secret);
    if (token !== null) principal = { type: 'admin', ...token };
  } else if (secret.startsWith(PROVISIONING_KEY_PREFIX)) {
    const key = await deps.provisioningKeys.findBySecret(secret);
    if (key !== null) principal = { type: 'provisioning_key', id: key.id, state: key.state };
  } else {
    const uuid = await deps.deviceKeys.findDevice(secret);
    if (uuid !== null) principal = { type: 'device', uuid };
  }
  if (principal === null) throw unauthorized('unknown or revoked credentials');
  ctx.state['principal'] = principal;
  ctx.state['credential'] = { kind: 'bearer', secret };
  return principal;
}

/** How the caller authenticated: its bearer secret, or its console session's secret. */
export function credentialOf(ctx: Context): { kind: 'bearer' | 'session'; secret: string } {
  const credential = ctx.state['credential'] as { kind: 'bearer' | 'session'; secret: string } | undefined;
  if (credential === undefined) throw new Error(`no guard authenticated ${ctx.method} ${ctx.path}`);
  return credential;
}

/** Whether `secret` still authenticates admin `id`: the admin token itself, or a console session it opened. */
export async function adminSecretValid(deps: AppDeps, id: string, secret: string): Promise<boolean> {
  if (secret.startsWith(ADMIN_TOKEN_PREFIX)) return (await deps.adminTokens.find(secret))?.id === id;
  return (await deps.consoleSessions.find(secret, deps.clock()))?.admin.id === id;
}

const forbidden = (expected: string, got: Principal['type']) =>
  new HttpError(
    403,
    'forbidden',
    `this endpoint needs ${expected}; the credentials given are a ${got.replace('_', ' ')}`,
  );

const EXPECTED: Record<Principal['type'], string> = {
  admin: 'an admin token',
  device: 'a device key',
  provisioning_key: 'a provisioning key',
};

/** The caller if it is of `type`, or 401/403. */
async function requireKind<T extends Principal['type']>(
  ctx: Context,
  deps: AppDeps,
  type: T,
): Promise<Principal & { type: T }> {
  const p = await authenticate(ctx, deps, type === 'device');
  if (p.type !== type) throw forbidden(EXPECTED[type], p.type);
  return p as Principal & { type: T };
}

/** The admin calling, or 401/403 (for /metrics, which takes METRICS_TOKEN besides). */
export function requireAdmin(ctx: Context, deps: AppDeps): Promise<Principal & { type: 'admin' }> {
  return requireKind(ctx, deps, 'admin');
}

type MatchedLayer = { path: string | RegExp; methods: string[] };

/**
 * @koa/router labels a request with the path of each layer as it runs it, so inside a guard
 * the label is the guard's (`/api/v1{/*rest}`) and a refused request would be logged and
 * counted under that; this puts back the route the request matched.
 */
function labelWithRoute(ctx: Context): void {
  const routed = ctx as Context & { matched?: MatchedLayer[]; _matchedRoute?: string | RegExp };
  const route = routed.matched?.findLast((layer) => layer.methods.includes(ctx.method));
  if (route !== undefined) routed._matchedRoute = route.path;
}

/**
 * The one guard of a router whose routes all want callers of `type` (its first layer, see
 * guardedRouter in app/http/create-app.ts): every route on that router, also one added later,
 * answers 401/403 before its handler runs. The caller is left in ctx.state for `callerOf`.
 * @koa/router runs it only for requests one of the router's routes matches, so a 404 or 405
 * stays one.
 */
export function guard(type: Principal['type'], deps: AppDeps) {
  return async function authenticated(ctx: Context, next: Next): Promise<void> {
    labelWithRoute(ctx);
    await requireKind(ctx, deps, type);
    await next();
  };
}

/** The caller the router's guard let through; on a route outside that router, a 500 rather than an open door. */
export function callerOf<T extends Principal['type']>(ctx: Context, type: T): Principal & { type: T } {
  const principal = ctx.state['principal'] as Principal | undefined;
  if (principal?.type !== type) {
    throw new Error(`no ${type} guard ran for ${ctx.method} ${ctx.path}: register the route on the ${type} router`);
  }
  return principal as Principal & { type: T };
}

/** The metadata actor for a principal. */
export function actorOf(principal: Principal): Actor {
  switch (principal.type) {
    case 'admin':
      return { type: 'admin', id: principal.id };
    case 'device':
      return { type: 'device', id: principal.uuid };
    case 'provisioning_key':
      return { type: 'provisioning_key', id: principal.id };
    default: {
      const unreachable: never = principal;
      return unreachable;
    }
  }
}
