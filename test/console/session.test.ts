// The console session (issue #17): an admin token buys an HttpOnly, SameSite=Strict cookie
// (Secure over HTTPS) with an expiry; the cookie acts as that admin token on the API, the
// pages and the event stream; state-changing requests on it need the CSRF token and this
// origin; sign out ends it on the server; revoking the token ends its sessions; neither the
// token nor the session secret appears in a URL or a page.
import { Buffer } from 'node:buffer';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { startConsoleApp } from './console-app.ts';

test('signing in sets an HttpOnly, SameSite=Strict, expiring cookie (not Secure over plain HTTP) and never echoes a secret', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const { response, setCookie, secret } = await app.signIn();
  t.regex(setCookie, /^devicetrail_session=dts_[\w-]{43}; /);
  t.regex(setCookie, /; HttpOnly/);
  t.regex(setCookie, /; SameSite=Strict/);
  t.regex(setCookie, /; Path=\//);
  t.regex(setCookie, /; Max-Age=28800/, 'eight hours by default (CONSOLE_SESSION_TTL)');
  t.regex(setCookie, /; Expires=\w{3}, /);
  t.notRegex(setCookie, /Secure/);
  t.is(response.json.admin.id, app.admin.id);
  t.false(response.text.includes(secret), 'the session secret is only in the cookie');
  t.false(response.text.includes(app.admin.token));
  t.is(response.headers.get('cache-control'), 'no-store');
  // only the hash is stored
  const stored = await app.db.pool.oneFirst(
    sql.type(z.object({ t: z.string() }))`SELECT string_agg(to_jsonb(s)::text, '') AS t FROM console_sessions s`,
  );
  t.false(stored.includes(secret));
  t.false(stored.includes(Buffer.from(secret).toString('hex')));
});

test('over HTTPS the cookie is Secure and __Host- prefixed, and only that cookie is accepted there', async (t) => {
  const app = await startConsoleApp({ https: true });
  t.teardown(() => app.close());
  const { setCookie, cookie, secret } = await app.signIn();
  t.regex(setCookie, /^__Host-devicetrail_session=dts_/);
  t.regex(setCookie, /; Secure/);
  t.regex(setCookie, /; Path=\//);
  t.notRegex(setCookie, /Domain=/i);
  t.is((await app.request('/api/v1/devices', { cookie })).status, 200);
  t.is((await app.request('/api/v1/devices', { cookie: `devicetrail_session=${secret}` })).status, 401);
});

test('CONSOLE_SECURE_COOKIE=always marks the cookie Secure behind a TLS-terminating proxy (plain HTTP to the app)', async (t) => {
  const app = await startConsoleApp({ console: { secureCookie: 'always' } });
  t.teardown(() => app.close());
  const { setCookie, cookie } = await app.signIn();
  t.regex(setCookie, /^__Host-devicetrail_session=.*; Secure/);
  t.is((await app.request('/console/session', { cookie })).status, 200);
});

test('the cookie acts as the admin token that opened it, on the API and on the pages', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const { cookie, secret, csrf } = await app.signIn();
  const { uuid } = await app.registerDevice({ name: 'cookie-device' });
  const list = await app.request('/api/v1/devices', { cookie });
  t.is(list.status, 200);
  t.true(list.json.devices.some((d: { uuid: string }) => d.uuid === uuid));
  const who = await app.request('/console/session', { cookie });
  t.like(who.json, { admin: { id: app.admin.id, name: 'console-admin' }, signed_in_with: 'console_session' });
  t.truthy(who.json.expires_at);
  // an action on the cookie is recorded as the admin token's
  const disabled = await app.request(`/api/v1/devices/${uuid}/active`, {
    method: 'PATCH',
    cookie,
    csrf,
    body: { is_active: false, reason: 'console test' },
  });
  t.is(disabled.status, 200, disabled.text);
  const events = await app.request(`/api/v1/devices/${uuid}/events?type=device.offline`, { token: app.admin.token });
  t.deepEqual(events.json.events[0].metadata.actor, { type: 'admin', id: app.admin.id });
  t.is(events.json.events[0].data.reason, 'console test');
  const page = await app.request('/', { cookie });
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  t.true(page.text.includes('cookie-device'));
  t.true(page.text.includes(`content="${csrf}"`));
  t.false(page.text.includes(secret), 'the session secret is never in a page');
  t.false(page.text.includes(app.admin.token), 'the admin token is never in a page');
  // a device key is no admin, cookie or not
  const asDevice = await app.request('/', { token: 'console-device-not-a-key-0000' });
  t.is(asDevice.status, 401);
});

test('a state-changing request on the cookie needs the CSRF token and this origin; a refused one writes nothing', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const { cookie, csrf } = await app.signIn();
  const { uuid } = await app.registerDevice();
  const before = await app.eventCount();
  const patch = (extra: { csrf?: string; headers?: Record<string, string> }) =>
    app.request(`/api/v1/devices/${uuid}/active`, {
      method: 'PATCH',
      cookie,
      body: { is_active: false, reason: 'csrf' },
      ...extra,
    });
  const missing = await patch({});
  t.is(missing.status, 403);
  t.is(missing.json.error.code, 'csrf_failed');
  t.regex(missing.json.error.message, /X-CSRF-Token/);
  t.is((await patch({ csrf: 'forged-token' })).status, 403);
  t.is((await patch({ csrf, headers: { Origin: 'https://evil.example' } })).status, 403);
  t.is((await patch({ csrf, headers: { 'Sec-Fetch-Site': 'cross-site' } })).status, 403);
  t.is((await patch({ csrf, headers: { 'Sec-Fetch-Site': 'same-site' } })).status, 403);
  t.is(await app.eventCount(), before, 'no refused request wrote an event');
  // reads need no token; a bearer request needs none either
  t.is((await app.request('/api/v1/devices', { cookie })).status, 200);
  const ok = await patch({ csrf, headers: { Origin: app.baseUrl, 'Sec-Fetch-Site': 'same-origin' } });
  t.is(ok.status, 200, ok.text);
  t.is(await app.eventCount(), before + 1);
  // the CSRF token of one session does not open another
  const other = await app.signIn();
  t.not(other.csrf, csrf);
  t.is((await app.request('/console/session', { method: 'DELETE', cookie: other.cookie, csrf })).status, 403);
});

test('a session cannot sign in again to outlive its expiry', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const { cookie, csrf } = await app.signIn();
  const renewed = await app.request('/console/session', { method: 'POST', cookie, csrf });
  t.is(renewed.status, 400);
  t.is(renewed.headers.get('set-cookie'), null);
});

test('a session expires after CONSOLE_SESSION_TTL', async (t) => {
  let now = Date.parse('2026-05-01T10:00:00Z');
  const app = await startConsoleApp({ clock: () => new Date(now), console: { sessionTtlMs: 60_000 } });
  t.teardown(() => app.close());
  const { cookie, setCookie } = await app.signIn();
  t.regex(setCookie, /Max-Age=60;/);
  t.regex(setCookie, /Expires=Fri, 01 May 2026 10:01:00 GMT/);
  now += 59_000;
  t.is((await app.request('/api/v1/devices', { cookie })).status, 200);
  now += 2_000;
  const expired = await app.request('/api/v1/devices', { cookie });
  t.is(expired.status, 401);
  t.regex(expired.json.error.message, /ended or expired/);
  // a browser is sent to sign in again, and back
  const page = await app.request('/devices/00000000-0000-0000-0000-000000000000?at=2026-05-01T10:00:00Z', {
    cookie,
    headers: { Accept: 'text/html' },
  });
  t.is(page.status, 302);
  t.is(
    page.headers.get('location'),
    `/sign-in?next=${encodeURIComponent('/devices/00000000-0000-0000-0000-000000000000?at=2026-05-01T10:00:00Z')}`,
  );
  t.regex(page.headers.get('set-cookie') ?? '', /devicetrail_session=; .*Max-Age=0/, 'the dead cookie is cleared');
});

test('signing out ends the session on the server: the old cookie is refused everywhere', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const { cookie, csrf } = await app.signIn();
  const out = await app.request('/console/session', { method: 'DELETE', cookie, csrf });
  t.is(out.status, 204);
  t.regex(out.headers.get('set-cookie') ?? '', /^devicetrail_session=; .*Max-Age=0/);
  // a client that kept the cookie gets nothing with it
  t.is((await app.request('/api/v1/devices', { cookie })).status, 401);
  t.is((await app.request('/console/session', { cookie })).status, 401);
  t.is((await app.request('/', { cookie })).status, 401);
  t.is((await app.request('/', { cookie, headers: { Accept: 'text/html' } })).status, 302);
  t.is((await app.request('/api/v1/events/stream', { cookie })).status, 401);
  // signing out with an admin token is harmless and ends nothing
  t.is((await app.request('/console/session', { method: 'DELETE', token: app.admin.token })).status, 204);
});

test('revoking the admin token ends every session it opened', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const other = await app.deps.adminTokens.create('other-admin');
  const mine = await app.signIn();
  const theirs = await app.signIn(other.token);
  t.is(await app.deps.adminTokens.revoke(app.admin.id), 1);
  t.is((await app.request('/api/v1/devices', { cookie: mine.cookie })).status, 401);
  t.is((await app.request('/api/v1/devices', { cookie: theirs.cookie })).status, 200, 'other tokens are untouched');
  t.is((await app.request('/console/session', { method: 'POST', token: app.admin.token })).status, 401);
});

test('the event stream on the cookie counts as its admin token and ends when the session does', async (t) => {
  const app = await startConsoleApp({ liveStreams: { maxStreamsPerToken: 1, recheckMs: 100 } });
  t.teardown(() => app.close());
  const { cookie, csrf } = await app.signIn();
  const controller = new AbortController();
  t.teardown(() => controller.abort());
  const stream = await fetch(`${app.baseUrl}/api/v1/events/stream`, {
    headers: { Cookie: cookie },
    signal: controller.signal,
  });
  t.is(stream.status, 200);
  t.regex(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  // the token's one stream is taken by its console session
  const second = await app.request('/api/v1/events/stream', { token: app.admin.token });
  t.is(second.status, 429);
  t.is(second.json.error.code, 'too_many_streams');
  // signing out ends the stream with a message saying why
  t.is((await app.request('/console/session', { method: 'DELETE', cookie, csrf })).status, 204);
  const text = await new Response(stream.body).text();
  t.regex(text, /event: error\ndata: .*credentials_revoked/);
});

test('pages: a browser without a session is sent to sign in; other clients get a JSON 401', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const browser = await app.request('/provisioning-keys', { headers: { Accept: 'text/html,application/xhtml+xml' } });
  t.is(browser.status, 302);
  t.is(browser.headers.get('location'), '/sign-in?next=%2Fprovisioning-keys');
  const api = await app.request('/provisioning-keys');
  t.is(api.status, 401);
  t.is(api.json.error.code, 'unauthorized');
  t.regex(api.headers.get('www-authenticate') ?? '', /^Bearer/);
  const signIn = await app.request('/sign-in?next=%2Fprovisioning-keys');
  t.is(signIn.status, 200);
  t.true(signIn.text.includes('data-next="/provisioning-keys"'));
  t.true(signIn.text.includes('type="password"'));
  t.regex(signIn.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
    const page = await app.request(`/sign-in?next=${encodeURIComponent(next)}`);
    t.true(page.text.includes('data-next="/"'), `next=${next} falls back to /`);
  }
  // signed in already: the sign-in page goes straight on
  const { cookie } = await app.signIn();
  const again = await app.request('/sign-in?next=%2Fwebhooks', { cookie });
  t.is(again.status, 302);
  t.is(again.headers.get('location'), '/webhooks');
});

test('assets are served from the repository with their types, and unknown ones are 404', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const js = await app.request('/console/assets/console.js');
  t.is(js.status, 200);
  t.regex(js.headers.get('content-type') ?? '', /^text\/javascript/);
  t.false(
    /https?:\/\//.test(js.text.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '')),
    'nothing loaded from elsewhere',
  );
  const css = await app.request('/console/assets/console.css');
  t.regex(css.headers.get('content-type') ?? '', /^text\/css/);
  const etag = css.headers.get('etag')!;
  t.is((await app.request('/console/assets/console.css', { headers: { 'If-None-Match': etag } })).status, 304);
  t.is(css.headers.get('cache-control'), 'no-cache');
  // pages link each file with its content hash, which may be kept for a year
  const page = await app.request('/sign-in');
  const linked = /href="(\/console\/assets\/console\.css\?v=[\w-]+)"/.exec(page.text)?.[1];
  t.truthy(linked);
  t.is((await app.request(linked!)).headers.get('cache-control'), 'public, max-age=31536000, immutable');
  t.is((await app.request('/console/assets/..%2F..%2Fconfig.ts')).status, 404);
  t.is((await app.request('/console/assets/nope.js')).status, 404);
});
