// The auth matrix: every route the routers serve × every kind of credential, each answered
// with its documented status (401 no or unknown credentials, 403 credentials that may not do
// this, 2xx when allowed), a JSON error on refusal, and not one row written by a refusal.
// Then the secrets grep: none of the secrets used appears in the events, the logs (the
// service's pino output), the error bodies, or anywhere in the database but as a hash.
// And the guard walk: every route but the named public ones refuses a request without
// credentials, whatever route-docs.ts declares, and a route added to a guarded router is
// guarded without a line of its own.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Router } from '@koa/router';
import test from 'ava';
import type Koa from 'koa';
import { sql } from 'slonik';
import { z } from 'zod';
import { registeredRoutes } from '../../app/http/openapi/openapi.ts';
import { type RouteAuth, routeDocs } from '../../app/http/openapi/route-docs.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';
import { createApp } from '../../app/http/create-app.ts';
import { type HttpRequest, type HttpResponse, send } from './http-client.ts';
import { type ReliabilityApp, startReliabilityApp } from './reliability-app.ts';
import { type ExampleFixture, plantSecret, routeExamples } from './route-examples.ts';
import { findSecrets } from './secrets.ts';
import { Buffer } from 'node:buffer';

type Credential = {
  name: string;
  header: string | undefined;
  /** The header it goes in: Authorization unless named (the device agent's X-Device-API-Key). */
  headerName?: string;
  /** The device a device request is about, when the credential is a device's key. */
  subject?: 'own' | 'disabled';
};

type Expectation = { status: '2xx' | 401 | 403; note?: string };

let app: ReliabilityApp;
let now = Date.now();
const secrets: string[] = [];
let credentials: Credential[] = [];
let fixture: ExampleFixture;
let disabledFixture: ExampleFixture;
let deviceA = '';
let deviceB = '';

async function ok(response: Promise<HttpResponse>, what: string): Promise<HttpResponse> {
  const r = await response;
  if (r.status >= 300) throw new Error(`${what}: ${r.status} ${r.text}`);
  return r;
}

test.before(async () => {
  app = await startReliabilityApp({ clock: () => new Date(now) });
  const admin = { Authorization: `Bearer ${app.adminToken}` };
  const createKey = async (body: object) =>
    (await ok(
      app.request({ method: 'POST', path: '/api/v1/provisioning-keys', headers: admin, body }),
      'provisioning key',
    )).json as { id: string; key: string };
  const register = async (key: string) => {
    const uuid = crypto.randomUUID();
    const deviceKey = `matrix-device-${crypto.randomUUID()}`;
    await ok(
      app.request({
        method: 'POST',
        path: '/api/v1/device/register',
        headers: { Authorization: `Bearer ${key}` },
        body: { uuid, deviceName: 'matrix', deviceType: 'rpi4', deviceApiKey: deviceKey },
      }),
      'register',
    );
    secrets.push(deviceKey);
    return { uuid, key: deviceKey };
  };
  const pk = await createKey({ fleet_id: 'matrix' });
  const revoked = await createKey({ fleet_id: 'matrix', description: 'to be revoked' });
  await ok(
    app.request({ method: 'DELETE', path: `/api/v1/provisioning-keys/${revoked.id}`, headers: admin }),
    'revoke key',
  );
  const expiring = await createKey({ fleet_id: 'matrix', expires_at: new Date(now + 3_600_000).toISOString() });
  const usedUp = await createKey({ fleet_id: 'matrix', max_devices: 1 });
  const victimKey = await createKey({ fleet_id: 'matrix', description: 'the DELETE example revokes it' });
  const a = await register(pk.key);
  const b = await register(pk.key);
  const c = await register(pk.key);
  const d = await register(pk.key);
  await register(usedUp.key);
  deviceA = a.uuid;
  deviceB = b.uuid;
  await ok(
    app.request({
      method: 'PATCH',
      path: `/api/v1/devices/${c.uuid}/active`,
      headers: admin,
      body: { is_active: false, reason: 'matrix' },
    }),
    'disable',
  );
  const webhookSecret = `whsec-matrix-${crypto.randomUUID()}`;
  const hook = await ok(
    app.request({
      method: 'POST',
      path: '/api/v1/webhooks',
      headers: admin,
      body: { url: 'http://127.0.0.1:9/a', event_types: ['*'], secret: webhookSecret },
    }),
    'webhook',
  );
  const victimHook = await ok(
    app.request({
      method: 'POST',
      path: '/api/v1/webhooks',
      headers: admin,
      body: { url: 'http://127.0.0.1:9/b', event_types: ['*'] },
    }),
    'webhook',
  );
  secrets.push(webhookSecret, victimHook.json.secret);
  // revoked with the operator command, as an operator would
  const toRevoke = await app.deps.adminTokens.create('matrix-revoked');
  const cli = spawnSync(process.execPath, ['--import', 'tsx', 'app/cli/admin.ts', 'revoke-token', toRevoke.id], {
    env: { ...process.env, DATABASE_URL: app.db.url },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (cli.status !== 0) throw new Error(`npm run admin -- revoke-token: ${cli.status} ${cli.stdout} ${cli.stderr}`);
  // the key's expiry passes
  now += 2 * 3_600_000;
  await ensurePartitionsAhead(app.db.pool, new Date(now), 7); // so /readyz is ready

  secrets.push(app.adminToken, toRevoke.token, pk.key, revoked.key, expiring.key, usedUp.key, victimKey.key);
  fixture = {
    device: a.uuid,
    deviceKey: a.key,
    adminDevice: d.uuid,
    victimKeyId: victimKey.id,
    webhookId: hook.json.id,
    victimWebhookId: victimHook.json.id,
    secretMarker: await plantSecret((r) => app.request(r), app.adminToken, d.uuid),
  };
  disabledFixture = { ...fixture, device: c.uuid, deviceKey: c.key };
  credentials = [
    { name: 'no header', header: undefined },
    { name: 'malformed: Basic scheme', header: `Basic ${Buffer.from('admin:admin').toString('base64')}` },
    { name: 'malformed: Bearer without token', header: 'Bearer' },
    { name: 'malformed: two tokens', header: `Bearer ${app.adminToken} ${app.adminToken}` },
    { name: 'malformed: unknown token', header: 'Bearer dta_not-a-real-token-0000000000000000' },
    { name: 'admin token', header: `Bearer ${app.adminToken}` },
    // the scheme is case-insensitive (RFC 7235; issue #16, finding 12): the same answers as above
    { name: 'admin token, scheme in lower case', header: `bearer ${app.adminToken}` },
    { name: 'provisioning key', header: `Bearer ${pk.key}` },
    { name: 'own device key', header: `Bearer ${a.key}`, subject: 'own' },
    { name: "another device's key", header: `Bearer ${b.key}`, subject: 'own' },
    { name: 'revoked provisioning key', header: `Bearer ${revoked.key}` },
    { name: 'expired provisioning key', header: `Bearer ${expiring.key}` },
    { name: 'used-up provisioning key', header: `Bearer ${usedUp.key}` },
    { name: "disabled device's key", header: `Bearer ${c.key}`, subject: 'disabled' },
    { name: 'revoked admin token', header: `Bearer ${toRevoke.token}` },
    // the device agent's header (issue #15): a device key there is a device credential on
    // device routes, and nothing anywhere else; nothing but a device key is ever read from it
    { name: 'own device key as X-Device-API-Key', header: a.key, headerName: 'X-Device-API-Key', subject: 'own' },
    { name: 'admin token as X-Device-API-Key', header: app.adminToken, headerName: 'X-Device-API-Key' },
    { name: 'unknown key as X-Device-API-Key', header: 'f'.repeat(64), headerName: 'X-Device-API-Key' },
  ];
  await app.newWrites(); // setup's writes are not the matrix's
});

test.after.always(async () => {
  await app?.close();
});

const UNAUTHENTICATED = new Set([
  'no header',
  'malformed: Basic scheme',
  'malformed: Bearer without token',
  'malformed: two tokens',
  'malformed: unknown token',
  'revoked admin token',
  'admin token as X-Device-API-Key',
  'unknown key as X-Device-API-Key',
]);

/** The documented answer for a route of `auth` kind called with `credential`. */
function expected(auth: RouteAuth, given: Credential, namesDevice: boolean): Expectation {
  const credential = { ...given, name: given.name.replace(/, scheme in lower case$/, '') };
  if (auth === 'none') return { status: '2xx', note: 'public' };
  if (UNAUTHENTICATED.has(credential.name)) return { status: 401 };
  // read by the device router only: elsewhere the request carries no credential
  if (credential.headerName === 'X-Device-API-Key' && auth !== 'device') return { status: 401 };
  switch (auth) {
    case 'admin':
    case 'metrics':
      return credential.name === 'admin token' ? { status: '2xx' } : { status: 403 };
    case 'provisioning_key':
      return credential.name === 'provisioning key' ? { status: '2xx' } : { status: 403 };
    case 'device':
      if (credential.name === 'own device key' || credential.name === 'own device key as X-Device-API-Key') {
        return { status: '2xx' };
      }
      // a device key on a route that names no device acts for its own device
      if (credential.name === "another device's key" && !namesDevice) return { status: '2xx', note: 'acts as itself' };
      return { status: 403 };
    default: {
      const unreachable: never = auth;
      return unreachable;
    }
  }
}

const streamVersion = z.object({ version: z.number() });

/** Routes anyone may call. Every other route refuses a request without credentials with 401. */
const PUBLIC_ROUTES = [
  'GET /console/assets/:file',
  'GET /docs',
  'GET /healthz',
  'GET /openapi.json',
  'GET /readyz',
  'GET /sign-in',
];

/**
 * Sends each non-public route its example (or, for a route without one, its path with a uuid
 * for each parameter) without credentials, each with its own request id, once as written and
 * once with the path in capitals (the routes match either); returns the routes that answered
 * anything but a 401, and the request id of each 401 by route.
 */
async function withoutCredentials(
  routes: string[],
  request: (req: HttpRequest) => Promise<HttpResponse>,
): Promise<{ open: string[]; refused: Map<string, string> }> {
  const open: string[] = [];
  const refused = new Map<string, string>();
  for (const route of routes) {
    if (PUBLIC_ROUTES.includes(route)) continue;
    const [method, pattern] = route.split(' ') as [string, string];
    const example = routeExamples[route]?.(fixture) ?? { method, path: pattern.replace(/:\w+/g, () => randomUUID()) };
    const [path, query] = example.path.split('?') as [string, string | undefined];
    for (const spelling of [example.path, `${path.toUpperCase()}${query === undefined ? '' : `?${query}`}`]) {
      const response = await request({ ...example, path: spelling, headers: { 'X-Request-Id': randomUUID() } });
      if (response.status !== 401) {
        open.push(`${route} as ${spelling}: ${response.status} ${response.text.slice(0, 100)}`);
      } else if (spelling === example.path) refused.set(route, String(response.headers['x-request-id']));
    }
  }
  return { open, refused };
}

/** The routers of an app built by createApp, as @koa/router mounts them. */
const routersOf = (koa: Koa): Router[] =>
  (koa.middleware as { router?: Router }[]).flatMap((m) => (m.router === undefined ? [] : [m.router]));

test.serial('every route × every credential: the documented status, a JSON error on refusal, no write on refusal', async (t) => {
  const routes = registeredRoutes(app.app);
  t.true(routes.length >= 30, `only ${routes.length} routes found`);
  const missingExamples = routes.filter((r) => routeExamples[r] === undefined);
  t.deepEqual(missingExamples, [], 'routes without an example in test/reliability/route-examples.ts');
  const undocumented = routes.filter((r) => !routeDocs.some((d) => `${d.method} ${d.path}` === r));
  t.deepEqual(undocumented, [], 'routes without a declaration (and so an auth kind) in app/http/openapi/route-docs.ts');

  const failures: string[] = [];
  const tally = { cells: 0, allowed: 0, refused401: 0, refused403: 0 };
  for (const route of routes) {
    const doc = routeDocs.find((d) => `${d.method} ${d.path}` === route);
    const example = routeExamples[route];
    if (doc === undefined || example === undefined) continue;
    for (const credential of credentials) {
      const fx = credential.subject === 'disabled' ? disabledFixture : fixture;
      const request: HttpRequest = example(fx);
      const namesDevice = JSON.stringify(request).includes(fx.device);
      const want = expected(doc.auth, credential, namesDevice);
      const versionA = async () =>
        (await app.db.pool.maybeOne(
          sql.type(
            streamVersion,
          )`SELECT version FROM streams WHERE aggregate_type = 'device' AND aggregate_id = ${deviceA}`,
        ))?.version;
      const beforeA = await versionA();
      const response = await app.request({
        ...request,
        headers: {
          ...request.headers,
          ...(credential.header === undefined ? {} : { [credential.headerName ?? 'Authorization']: credential.header }),
        },
      });
      const writes = await app.newWrites();
      tally.cells += 1;
      const cell = `${route} with ${credential.name}: ${response.status} ${response.text.slice(0, 200)}`;
      if (want.status === '2xx') {
        tally.allowed += 1;
        // after the admin token ran each example, a destructive one (DELETE of the victim webhook)
        // finds nothing left: for the lower-case scheme what counts is that the route ran
        const ranAfterAll = credential.name.endsWith('scheme in lower case') && response.status === 404;
        if ((response.status < 200 || response.status >= 300) && !ranAfterAll) {
          failures.push(`${cell} (expected 2xx)`);
        }
        if (want.note === 'acts as itself' && (await versionA()) !== beforeA) {
          failures.push(`${cell}: wrote to device A's stream with device B's key`);
        }
        continue;
      }
      if (want.status === 401) tally.refused401 += 1;
      else tally.refused403 += 1;
      if (response.status !== want.status) failures.push(`${cell} (expected ${want.status})`);
      if (typeof response.json?.error?.code !== 'string' || typeof response.json?.error?.message !== 'string') {
        failures.push(`${cell}: not a JSON error`);
      }
      if (response.status === 401 && !String(response.headers['www-authenticate'] ?? '').startsWith('Bearer')) {
        failures.push(`${cell}: 401 without WWW-Authenticate: Bearer`);
      }
      if (writes.length > 0) failures.push(`${cell}: the refusal wrote ${JSON.stringify(writes)}`);
      if ((await versionA()) !== beforeA) failures.push(`${cell}: the refusal appended to device A's stream`);
    }
  }
  t.log(
    `${routes.length} routes × ${credentials.length} credentials = ${tally.cells} cells: ${tally.allowed} allowed (2xx), ${tally.refused401} refused 401, ${tally.refused403} refused 403`,
  );
  t.deepEqual(failures, []);
  t.is(tally.cells, routes.length * credentials.length);
});

test.serial('every route but the public ones answers 401 without credentials, logged under its route, writing nothing', async (t) => {
  const routes = registeredRoutes(app.app);
  t.deepEqual(
    routeDocs.filter((d) => d.auth === 'none').map((d) => `${d.method} ${d.path}`).sort(),
    PUBLIC_ROUTES,
    'the public routes are exactly the ones route-docs.ts declares without credentials',
  );
  const { open, refused } = await withoutCredentials(routes, (req) => app.request(req));
  t.deepEqual(open, []);
  t.is(refused.size, routes.length - PUBLIC_ROUTES.length);
  t.deepEqual(await app.newWrites(), []);
  // a guard runs as a layer of its router; the refusal is still counted under the route
  const logged = new Map<string, string>();
  for (const line of app.logLines) {
    const entry = JSON.parse(line) as { request_id?: string; route?: string };
    if (entry.request_id !== undefined && entry.route !== undefined) logged.set(entry.request_id, entry.route);
  }
  const apiRoutes = [...refused].filter(([route]) => route.includes(' /api/'));
  t.true(apiRoutes.length >= 30);
  const mislabelled = apiRoutes.filter(([route, id]) => route.split(' ')[1] !== logged.get(id));
  t.deepEqual(mislabelled, [], 'routes whose 401 was logged under another route');
});

test.serial('a route added to a guarded router needs no guard of its own; one added elsewhere is found by the walk', async (t) => {
  const koa = createApp(app.deps);
  const guarded = routersOf(koa).find((r) => r.stack.some((l) => l.path === '/api/v1/devices'));
  if (guarded === undefined) return t.fail('no router serves GET /api/v1/devices');
  guarded.get('/new-admin-report', (ctx) => {
    ctx.body = { everything: 'an admin may see' };
  });
  const unguarded = new Router({ prefix: '/api/v1' });
  unguarded.get('/forgotten', (ctx) => {
    ctx.body = { everything: 'an admin may see' };
  });
  // mounted before the final 404 handler, as a router added in create-app.ts would be
  koa.middleware.splice(koa.middleware.length - 1, 0, unguarded.routes() as Koa.Middleware);
  const server = createServer(koa.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const routes = registeredRoutes(koa);
  t.true(routes.includes('GET /api/v1/new-admin-report') && routes.includes('GET /api/v1/forgotten'));
  const { open, refused } = await withoutCredentials(routes, (req) => send(baseUrl, req));
  t.true(refused.has('GET /api/v1/new-admin-report'), 'the admin router guards a route it gains later');
  t.deepEqual([...new Set(open.map((o) => o.split(' as ')[0]))], ['GET /api/v1/forgotten']);
  const asDevice = await send(baseUrl, {
    method: 'GET',
    path: '/api/v1/new-admin-report',
    headers: { Authorization: credentials.find((c) => c.name === 'own device key')!.header! },
  });
  t.is(asDevice.status, 403);
});

test.serial('a disabled device is refused on its own routes with device_inactive, and only its last_seen_at moves', async (t) => {
  const disabled = credentials.find((c) => c.name === "disabled device's key")!;
  for (
    const route of ['GET /api/v1/device/:uuid/target-state', 'PATCH /api/v1/device/state', 'POST /api/v1/device/events']
  ) {
    const request = routeExamples[route]!(disabledFixture);
    const response = await app.request({ ...request, headers: { Authorization: disabled.header! } });
    t.is(response.status, 403, route);
    t.is(response.json?.error?.code, 'device_inactive', route);
    t.deepEqual(await app.newWrites(), [], route);
  }
  const seen = await app.db.pool.oneFirst(
    sql.type(
      z.object({ last_seen_at: z.string().nullable() }),
    )`SELECT last_seen_at FROM devices WHERE uuid = ${disabledFixture.device}`,
  );
  t.truthy(seen, 'the refused calls count as contacts');
  // and another device's uuid in the body is refused before anything is looked at
  const other = await app.request({
    method: 'PATCH',
    path: '/api/v1/device/state',
    headers: { Authorization: credentials.find((c) => c.name === 'own device key')!.header! },
    body: { [deviceB]: { cpu_usage: 1 } },
  });
  t.is(other.status, 403);
  t.deepEqual(await app.newWrites(), []);
});

test.serial('no secret used in the suite appears in events, logs, error bodies, or the database except as a hash', async (t) => {
  t.true(app.logLines.length > 400, `only ${app.logLines.length} log lines captured`);
  t.true(app.errorBodies.length > 300, `only ${app.errorBodies.length} error bodies`);
  const events = await app.db.pool.anyFirst(
    sql.type(z.object({ t: z.string() }))`SELECT concat_ws(' ', data::text, metadata::text, source) AS t FROM events`,
  );
  const tables = (await app.databaseText()).filter((h) => h.name !== 'table webhooks'); // webhook secrets sign deliveries: stored by design
  const haystacks = [
    { name: 'events', text: events.join('\n') },
    { name: 'logs', text: app.logLines.join('') },
    { name: 'error bodies', text: app.errorBodies.join('\n') },
    ...tables,
  ];
  const found = findSecrets(secrets, haystacks);
  t.log(
    `${
      new Set(secrets).size
    } secrets searched for in ${events.length} events, ${app.logLines.length} log lines, ${app.errorBodies.length} error bodies and ${tables.length} tables: ${found.length} found`,
  );
  t.deepEqual(found, []);
  // the grep can find one: a secret planted in a log line is reported
  t.is(findSecrets([secrets[0]!], [{ name: 'planted', text: `x ${secrets[0]!} y` }]).length, 1);
});
