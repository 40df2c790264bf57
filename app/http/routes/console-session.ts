// The admin console's session (issue #17), on the console router (the admin guard):
//   POST   /console/session   sign in: an admin token in the Authorization header buys a session
//                             cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) for CONSOLE_SESSION_TTL
//   GET    /console/session   who is signed in, and until when
//   DELETE /console/session   sign out: the session ends on the server, the cookie is cleared
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { callerOf, credentialOf } from '../middleware/auth.ts';
import { clearSessionCookie, setSessionCookie } from '../middleware/console-session.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';

/** Registers the session endpoints on the console router (its admin guard authenticates). */
export function consoleSessionRoutes(router: Router, deps: AppDeps): void {
  router.post('/console/session', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    // a session may not renew itself: its expiry would mean nothing
    if (credentialOf(ctx).kind !== 'bearer') {
      throw new HttpError(400, 'invalid_request', 'Authorization header: sign in with an admin token, not a session');
    }
    const now = deps.clock();
    await deps.consoleSessions.prune(now);
    const session = await deps.consoleSessions.open({
      adminTokenId: admin.id,
      now,
      ttlMs: deps.console.sessionTtlMs,
      ipAddress: ctx.ip || null,
      userAgent: ctx.get('User-Agent').slice(0, 512) || null,
    });
    setSessionCookie(ctx, deps, session.secret, session.expires_at);
    ctx.status = 201;
    ctx.body = { admin: { id: admin.id, name: admin.name }, expires_at: session.expires_at };
  });

  router.get('/console/session', async (ctx: Context) => {
    const admin = callerOf(ctx, 'admin');
    const credential = credentialOf(ctx);
    const session = credential.kind === 'session'
      ? await deps.consoleSessions.find(credential.secret, deps.clock())
      : null;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      admin: { id: admin.id, name: admin.name },
      signed_in_with: credential.kind === 'session' ? 'console_session' : 'admin_token',
      expires_at: session?.expires_at ?? null,
    };
  });

  router.delete('/console/session', async (ctx: Context) => {
    const credential = credentialOf(ctx);
    if (credential.kind === 'session') {
      await deps.consoleSessions.end(credential.secret, deps.clock());
      clearSessionCookie(ctx, deps);
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 204;
  });
}
