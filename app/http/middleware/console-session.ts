// The admin console's session cookie (issue #17). A browser signs in with an admin token
// (POST /console/session, token in the Authorization header, never in a URL, a page or
// browser storage) and gets a random session secret in an HttpOnly, SameSite=Strict cookie,
// Secure over HTTPS (CONSOLE_SECURE_COOKIE=always behind a TLS-terminating proxy). The
// admin guard (middleware/auth.ts) accepts that cookie when a request has no Authorization
// header; a state-changing request on the cookie must also carry the session's CSRF token
// in X-CSRF-Token and come from this origin.
import { createHash } from 'node:crypto';
import { Buffer } from 'node:buffer';
import type { Context, Next } from 'koa';
import type { ConsoleSession } from '../../../infra/console/sessions.ts';
import { sameHash } from '../../../infra/devices/credentials.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';

/** The cookie over plain HTTP; over HTTPS the `__Host-` name (Secure, Path=/, no Domain: this host only). */
export const SESSION_COOKIE = 'devicetrail_session';
export const SECURE_SESSION_COOKIE = '__Host-devicetrail_session';
/** The header a state-changing request on the cookie carries its CSRF token in. */
export const CSRF_HEADER = 'X-CSRF-Token';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const SECRET_SHAPE = /^dts_[A-Za-z0-9_-]{43}$/;

/** Whether this request's session cookie is (to be) Secure. */
export function secureCookie(ctx: Context, deps: AppDeps): boolean {
  return deps.console.secureCookie === 'always' || ctx.secure;
}

/** The session secret in the request's cookie, or null. */
export function sessionSecretOf(ctx: Context, deps: AppDeps): string | null {
  const name = secureCookie(ctx, deps) ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
  for (const part of ctx.get('Cookie').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return SECRET_SHAPE.test(value) ? value : null;
    }
  }
  return null;
}

/**
 * The session's CSRF token: a one-way function of its secret, so the server needs no
 * storage for it and a page that shows it reveals nothing that would open the session.
 */
export function csrfTokenOf(secret: string): string {
  return createHash('sha256').update(`devicetrail console csrf\0${secret}`, 'utf8').digest('base64url');
}

const unauthorized = (message: string) =>
  new HttpError(401, 'unauthorized', message, undefined, { 'WWW-Authenticate': 'Bearer realm="devicetrail"' });

const csrfFailed = (message: string) => new HttpError(403, 'csrf_failed', message);

/** Refuses a state-changing request on the cookie that another site could have sent. */
function checkCrossSite(ctx: Context, secret: string): void {
  const site = ctx.get('Sec-Fetch-Site');
  if (site !== '' && site !== 'same-origin') {
    throw csrfFailed(`a console request must come from the console itself (Sec-Fetch-Site: ${site})`);
  }
  const origin = ctx.get('Origin');
  if (origin !== '') {
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      host = null;
    }
    if (host !== ctx.host) throw csrfFailed(`a console request must come from the console itself (Origin: ${origin})`);
  }
  const given = Buffer.from(ctx.get(CSRF_HEADER), 'utf8');
  const expected = Buffer.from(csrfTokenOf(secret), 'utf8');
  if (given.length === 0) throw csrfFailed(`missing ${CSRF_HEADER} header: reload the console page and try again`);
  if (!sameHash(given, expected)) throw csrfFailed(`${CSRF_HEADER} does not match this session: reload the page`);
}

/**
 * The console session of a request without an Authorization header: null when it has no
 * session cookie, 401 when the cookie's session ended, expired or its token was revoked,
 * 403 when a state-changing request fails the CSRF checks.
 */
export async function consoleSessionOf(
  ctx: Context,
  deps: AppDeps,
): Promise<{ session: ConsoleSession; secret: string } | null> {
  const secret = sessionSecretOf(ctx, deps);
  if (secret === null) return null;
  const session = await deps.consoleSessions.find(secret, deps.clock());
  if (session === null) {
    throw unauthorized('the console session has ended or expired, or its admin token was revoked: sign in again');
  }
  if (!SAFE_METHODS.has(ctx.method)) checkCrossSite(ctx, secret);
  return { session, secret };
}

function cookie(ctx: Context, deps: AppDeps, value: string, expires: Date): string {
  const secure = secureCookie(ctx, deps);
  // rounded up: the expiry comes from the database's clock at sign-in, read a moment before this
  // one (a busy server once gave 28,799 for an eight-hour session); the server checks the expiry itself
  const maxAge = Math.max(0, Math.ceil((expires.getTime() - deps.clock().getTime()) / 1000));
  return [
    `${secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE}=${value}`,
    'Path=/',
    `Expires=${expires.toUTCString()}`,
    `Max-Age=${maxAge}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** Sets the session cookie (written by hand: Koa's cookies refuse Secure on a proxied HTTPS request). */
export function setSessionCookie(ctx: Context, deps: AppDeps, secret: string, expiresAt: string): void {
  ctx.append('Set-Cookie', cookie(ctx, deps, secret, new Date(expiresAt)));
  ctx.set('Cache-Control', 'no-store');
}

/** Tells the browser to forget the session cookie. */
export function clearSessionCookie(ctx: Context, deps: AppDeps): void {
  ctx.append('Set-Cookie', cookie(ctx, deps, '', new Date(0)));
}

/**
 * For a browser asking for a console page: a 401 becomes a redirect to the sign-in page,
 * which comes back here after signing in. API clients still get the JSON 401.
 */
export function signInRedirect(deps: AppDeps) {
  return async function redirectToSignIn(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (error) {
      const browser = ctx.method === 'GET' && /\btext\/html\b/.test(ctx.get('Accept'));
      if (!(error instanceof HttpError) || error.status !== 401 || !browser) throw error;
      if (sessionSecretOf(ctx, deps) !== null) clearSessionCookie(ctx, deps);
      ctx.redirect(`/sign-in?next=${encodeURIComponent(ctx.originalUrl)}`);
    }
  };
}
