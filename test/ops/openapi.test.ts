// /openapi.json: valid OpenAPI 3.1 (checked with @seriousme/openapi-schema-validator),
// generated from the zod schemas the routes use, covering exactly the routes the Koa
// routers serve; live answers match the documented response schemas; /docs works offline.
import { Router } from '@koa/router';
import { Validator } from '@seriousme/openapi-schema-validator';
import test from 'ava';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import { registerBody } from '../../app/http/routes/device.ts';
import type { JsonSchema, OpenApiDocument } from '../../app/http/openapi/document.ts';
import { buildOpenApi, registeredRoutes, routeCoverage } from '../../app/http/openapi/openapi.ts';
import { routeDocs } from '../../app/http/openapi/route-docs.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { type OpsResponse, startOpsApp } from './ops-app.ts';

test('every route the routers serve is documented, and every documented route is served', async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const app = createApp(createDeps(db.pool));
  const served = registeredRoutes(app);
  t.true(served.length >= 30, `only ${served.length} routes found: the route walk is broken`);
  t.true(served.includes('GET /api/v1/devices/:uuid') && served.includes('GET /healthz'));
  const coverage = routeCoverage(app, routeDocs);
  t.deepEqual(coverage.undocumented, [], 'routes without a declaration in app/http/openapi/route-docs.ts');
  t.deepEqual(coverage.missing, [], 'declarations in app/http/openapi/route-docs.ts without a route');

  // the check itself fails both ways
  const extra = new Router({ prefix: '/api/v1' });
  extra.get('/undocumented', () => {});
  app.use(extra.routes());
  t.deepEqual(routeCoverage(app, routeDocs).undocumented, ['GET /api/v1/undocumented']);
  t.deepEqual(
    routeCoverage(app, [...routeDocs, {
      method: 'GET',
      path: '/gone',
      tag: 'x',
      summary: 'x',
      auth: 'none',
      responses: {},
    }]).missing,
    ['GET /gone'],
  );
});

test('/openapi.json validates as OpenAPI 3.1 and every schema in it compiles as JSON Schema 2020-12', async (t) => {
  const app = await startOpsApp();
  t.teardown(() => app.close());
  const response = await app.request('GET', '/openapi.json');
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^application\/json/);
  const document = response.body as OpenApiDocument;
  t.is(document.openapi, '3.1.0');

  const validator = new Validator();
  const result = await validator.validate(structuredClone(document) as Record<string, unknown>);
  t.deepEqual(result.errors, undefined, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
  t.true(result.valid);
  t.is(validator.version, '3.1');
  const broken = structuredClone(document) as OpenApiDocument;
  delete (broken.paths['/api/v1/devices/{uuid}']!['get']!.parameters![0] as { in?: string }).in;
  t.false(
    (await new Validator().validate(broken as unknown as Record<string, unknown>)).valid,
    'the validator notices a broken document',
  );

  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  let compiled = 0;
  for (const schema of allSchemas(document)) {
    ajv.compile(inlineRefs(schema, document));
    compiled += 1;
  }
  t.true(compiled > 60, `compiled ${compiled} schemas`);
});

test("request schemas are the route modules' own zod schemas, converted", (t) => {
  const register = routeDocs.find((d) => d.method === 'POST' && d.path === '/api/v1/device/register');
  t.is(register?.body, registerBody, 'the declaration must use the schema the handler parses with');
  const document = buildOpenApi(routeDocs);
  const body = document.paths['/api/v1/device/register']!['post']!.requestBody!.content['application/json']!.schema;
  t.deepEqual(body['required'], ['uuid', 'deviceName', 'deviceType', 'deviceApiKey']);
  // device-facing bodies ignore fields they do not know (issue #15); admin bodies stay strict
  t.not(body['additionalProperties'], false);
  const target =
    document.paths['/api/v1/devices/{uuid}/target-state']!['post']!.requestBody!.content['application/json']!
      .schema;
  t.is(target['additionalProperties'], false);
  t.is((body['properties'] as Record<string, JsonSchema>)['deviceApiKey']!['minLength'], 8);
  const list = document.paths['/api/v1/devices']!['get']!.parameters!;
  t.like(list.find((p) => p.name === 'limit'), {
    in: 'query',
    required: false,
    schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  });
  t.like(document.paths['/api/v1/devices/{uuid}']!['get']!.parameters![0], {
    name: 'uuid',
    in: 'path',
    required: true,
  });
  t.deepEqual(document.paths['/api/v1/devices']!['get']!.security, [{ adminToken: [] }]);
  t.deepEqual(document.paths['/metrics']!['get']!.security, [{ adminToken: [] }, { metricsToken: [] }]);
  t.truthy(document.paths['/api/v1/device/register']!['post']!.responses['415'], 'body routes document 415');
  const ids = Object.values(document.paths).flatMap((methods) => Object.values(methods).map((op) => op.operationId));
  t.is(new Set(ids).size, ids.length, 'operationIds are unique');
});

test('live answers match the documented response schemas', async (t) => {
  const app = await startOpsApp();
  t.teardown(() => app.close());
  const document = (await app.request('GET', '/openapi.json')).body as OpenApiDocument;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const checked = new Set<string>();
  const check = (method: string, koaPath: string, response: OpsResponse) => {
    const path = koaPath.replace(/:(\w+)/g, '{$1}');
    const documented = document.paths[path]?.[method.toLowerCase()]?.responses[String(response.status)];
    t.truthy(
      documented,
      `${method} ${koaPath} answered ${response.status}, which is not documented: ${response.text.slice(0, 200)}`,
    );
    const content = documented?.content;
    checked.add(`${method} ${koaPath} ${response.status}`);
    if (content === undefined) {
      t.is(response.text, '', `${method} ${koaPath} ${response.status} documents no body`);
      return;
    }
    const [type, { schema }] = Object.entries(content)[0]!;
    if (type === 'application/json') {
      const validate = ajv.compile(inlineRefs(schema, document));
      t.true(
        validate(response.body),
        `${method} ${koaPath} ${response.status}: ${JSON.stringify(validate.errors)?.slice(0, 600)}`,
      );
    } else {
      t.true((response.headers.get('content-type') ?? '').startsWith(type), `${method} ${koaPath}: content type`);
    }
  };
  const admin = app.adminToken;
  const call = async (method: string, koaPath: string, path: string, opts: Parameters<typeof app.request>[2] = {}) => {
    const response = await app.request(method, path, opts);
    check(method, koaPath, response);
    return response;
  };

  const key = (await call('POST', '/api/v1/provisioning-keys', '/api/v1/provisioning-keys', {
    token: admin,
    body: { fleet_id: 'docs', max_devices: 5 },
  })).body;
  await call('GET', '/api/v1/provisioning-keys', '/api/v1/provisioning-keys', { token: admin });
  const uuid = crypto.randomUUID();
  const deviceKey = `docs-device-${crypto.randomUUID()}`;
  const registration = {
    uuid,
    deviceName: 'docs-device',
    deviceType: 'raspberry-pi-4',
    deviceApiKey: deviceKey,
    macAddress: 'b8:27:eb:12:34:56',
  };
  await call('POST', '/api/v1/device/register', '/api/v1/device/register', { token: key.key, body: registration });
  await call('POST', '/api/v1/device/register', '/api/v1/device/register', { token: key.key, body: registration });
  await call('POST', '/api/v1/device/register', '/api/v1/device/register', {
    token: key.key,
    body: { ...registration, deviceName: '' },
  });
  await call('POST', '/api/v1/devices/:uuid/target-state', `/api/v1/devices/${uuid}/target-state`, {
    token: admin,
    body: {
      apps: { '1000': { appId: 1000, appName: 'app', services: [{ serviceName: 'main', image: 'app:1' }] } },
      config: { A: '1' },
    },
  });
  await call('POST', '/api/v1/devices/:uuid/target-state', `/api/v1/devices/${uuid}/target-state`, {
    token: admin,
    headers: { 'If-Match': '"7"' },
    body: { apps: {} },
  });
  await call('GET', '/api/v1/device/:uuid/target-state', `/api/v1/device/${uuid}/target-state`, { token: deviceKey });
  await call('GET', '/api/v1/device/:uuid/target-state', `/api/v1/device/${uuid}/target-state`, {
    token: deviceKey,
    headers: { 'If-None-Match': '"1"' },
  });
  await call('PATCH', '/api/v1/device/state', '/api/v1/device/state', {
    token: deviceKey,
    body: { [uuid]: { apps: { '1000': { status: 'running' } }, cpu_usage: 5 } },
  });
  await call('POST', '/api/v1/device/events', '/api/v1/device/events', {
    token: deviceKey,
    body: { events: [{ type: 'volume.created', data: { app_id: 1000, name: 'cache' } }] },
  });
  await call('PATCH', '/api/v1/devices/:uuid/active', `/api/v1/devices/${uuid}/active`, {
    token: admin,
    body: { is_active: false, reason: 'docs' },
  });
  await call('GET', '/api/v1/device/:uuid/target-state', `/api/v1/device/${uuid}/target-state`, { token: deviceKey });
  await call('GET', '/api/v1/devices', '/api/v1/devices?limit=5', { token: admin });
  await call('GET', '/api/v1/devices', '/api/v1/devices', { token: deviceKey });
  await call('GET', '/api/v1/devices', '/api/v1/devices');
  await call('GET', '/api/v1/devices/:uuid', `/api/v1/devices/${uuid}`, { token: admin });
  await call('GET', '/api/v1/devices/:uuid', `/api/v1/devices/${crypto.randomUUID()}`, { token: admin });
  const events = (await call('GET', '/api/v1/devices/:uuid/events', `/api/v1/devices/${uuid}/events`, { token: admin }))
    .body.events as { timestamp: string }[];
  await call(
    'GET',
    '/api/v1/devices/:uuid/state',
    `/api/v1/devices/${uuid}/state?at=${encodeURIComponent(events[1]!.timestamp)}`,
    { token: admin },
  );
  await call('GET', '/api/v1/devices/:uuid/drift', `/api/v1/devices/${uuid}/drift`, { token: admin });
  await call('GET', '/api/v1/devices/:uuid/diff', `/api/v1/devices/${uuid}/diff?from=2020-01-01T00:00:00Z`, {
    token: admin,
  });
  await call('GET', '/api/v1/devices/:uuid/timeline', `/api/v1/devices/${uuid}/timeline`, { token: admin });
  await call('GET', '/api/v1/fleet/status', '/api/v1/fleet/status', { token: admin });
  await call('GET', '/api/v1/fleet/summary', '/api/v1/fleet/summary', { token: admin });
  for (
    const path of [
      '/api/v1/analytics',
      '/api/v1/analytics/target-changes',
      '/api/v1/analytics/reports',
      '/api/v1/analytics/reconciliation',
      '/api/v1/analytics/drifting',
    ]
  ) {
    await call('GET', path, path, { token: admin });
  }
  await call('GET', '/api/v1/events', '/api/v1/events?limit=2', { token: admin });
  const webhook = (await call('POST', '/api/v1/webhooks', '/api/v1/webhooks', {
    token: admin,
    body: { url: 'http://127.0.0.1:9/hook', event_types: ['device.offline'] },
  })).body;
  await call('GET', '/api/v1/webhooks', '/api/v1/webhooks', { token: admin });
  await call('GET', '/api/v1/webhooks/:id', `/api/v1/webhooks/${webhook.id}`, { token: admin });
  await call('GET', '/api/v1/webhooks/:id/deliveries', `/api/v1/webhooks/${webhook.id}/deliveries`, { token: admin });
  await call('DELETE', '/api/v1/webhooks/:id', `/api/v1/webhooks/${webhook.id}`, { token: admin });
  await call('DELETE', '/api/v1/provisioning-keys/:id', `/api/v1/provisioning-keys/${key.id}`, { token: admin });
  await call('GET', '/healthz', '/healthz');
  await call('GET', '/readyz', '/readyz');
  await call('GET', '/metrics', '/metrics', { token: admin });
  await call('GET', '/docs', '/docs');

  for (
    const expected of [
      'POST /api/v1/device/register 201',
      'POST /api/v1/device/register 200',
      'POST /api/v1/device/register 400',
      'GET /api/v1/device/:uuid/target-state 304',
      'GET /api/v1/device/:uuid/target-state 403',
      'POST /api/v1/devices/:uuid/target-state 412',
      'GET /api/v1/devices 401',
      'GET /api/v1/devices 403',
      'GET /api/v1/devices/:uuid 404',
      'DELETE /api/v1/webhooks/:id 204',
    ]
  ) {
    t.true(checked.has(expected), `not exercised: ${expected}`);
  }
});

test('/docs is one self-contained page that lists every operation', async (t) => {
  const app = await startOpsApp();
  t.teardown(() => app.close());
  const page = await app.request('GET', '/docs');
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(
    page.headers.get('content-security-policy') ?? '',
    /default-src 'none'/,
    'the page may load nothing from anywhere',
  );
  t.false(
    /<script|<link|<img|@import|url\(/i.test(page.text),
    'no scripts, stylesheets, images or fonts from elsewhere',
  );
  t.false(/(src|href)="https?:/i.test(page.text));
  for (const doc of routeDocs) {
    t.true(
      page.text.includes(`<code>${doc.path.replace(/:(\w+)/g, '{$1}')}</code>`),
      `missing ${doc.method} ${doc.path}`,
    );
    t.true(page.text.includes(doc.summary.replace(/'/g, '&#39;')), `missing the summary of ${doc.path}`);
  }
  t.true(page.text.includes('deviceApiKey'), 'request body fields are listed');
});

/** Every schema object in the document: parameters, bodies, responses, components. */
function allSchemas(document: OpenApiDocument): JsonSchema[] {
  const out: JsonSchema[] = [...Object.values(document.components.schemas)];
  for (const methods of Object.values(document.paths)) {
    for (const op of Object.values(methods)) {
      for (const p of op.parameters ?? []) out.push(p.schema);
      for (const c of Object.values(op.requestBody?.content ?? {})) out.push(c.schema);
      for (const r of Object.values(op.responses)) for (const c of Object.values(r.content ?? {})) out.push(c.schema);
    }
  }
  return out;
}

/** The schema with `#/components/schemas/…` references replaced by their targets. */
function inlineRefs(schema: JsonSchema, document: OpenApiDocument): JsonSchema {
  const ref = schema['$ref'];
  if (typeof ref === 'string') {
    return inlineRefs(document.components.schemas[ref.replace('#/components/schemas/', '')]!, document);
  }
  return Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [
      k,
      Array.isArray(v)
        ? v.map((x) => (x !== null && typeof x === 'object' ? inlineRefs(x as JsonSchema, document) : x))
        : v !== null && typeof v === 'object'
        ? inlineRefs(v as JsonSchema, document)
        : v,
    ]),
  );
}
