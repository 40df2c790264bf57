// OpenAPI 3.1 from the route declarations (app/http/openapi/route-docs.ts): zod schemas become JSON
// Schema (zod-to-json-schema, input side, so defaults and optional fields read as a client
// sends them). Served at /openapi.json, and rendered as HTML at /docs (app/html/docs-page.ts).
import { readFileSync } from 'node:fs';
import type Koa from 'koa';
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import type { ZodTypeAny } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { renderDocsPage } from '../../html/docs-page.ts';
import type { JsonSchema, OpenApiDocument, Operation, Parameter } from './document.ts';
import { uuidSchema } from '../request.ts';
import { errorResponse } from './response-schemas.ts';
import type { RouteAuth, RouteDoc } from './route-docs.ts';

/** A zod schema as JSON Schema (2020-12 compatible: no $schema, no $refs). */
export function jsonSchemaOf(schema: ZodTypeAny): JsonSchema {
  const converted = zodToJsonSchema(schema, {
    target: 'jsonSchema2019-09',
    $refStrategy: 'none',
    effectStrategy: 'input',
    pipeStrategy: 'input',
    // only `.strict()` objects refuse unknown keys; answers may grow fields
    removeAdditionalStrategy: 'strict',
  }) as JsonSchema;
  delete converted['$schema'];
  return converted;
}

const ERROR_TEXT: Record<number, string> = {
  400: 'invalid request: the message names the field (e.g. `body.deviceName: Required`)',
  401: 'missing, malformed or unknown credentials',
  403: 'credentials that may not do this (wrong kind, another device, disabled device, revoked or expired key)',
  404: 'not found',
  409: 'conflict (e.g. `registration_conflict`: a uuid registered with another key, or a device key in use)',
  412: 'If-Match does not match the current target version',
  413: 'request body larger than BODY_LIMIT_KB',
  415: 'request body is not JSON',
  429:
    'too many requests (a rate limit, or too many failed authentications from this address or key prefix: `too_many_failed_authentications`); retry after Retry-After seconds',
  503: 'database unavailable; retry after Retry-After seconds',
};

const SECURITY: Record<Exclude<RouteAuth, 'none'>, Record<string, string[]>[]> = {
  admin: [{ adminToken: [] }],
  device: [{ deviceKey: [] }],
  provisioning_key: [{ provisioningKey: [] }],
  metrics: [{ adminToken: [] }, { metricsToken: [] }],
};

/** `/api/v1/devices/:uuid` → `/api/v1/devices/{uuid}`. */
export const openApiPath = (koaPath: string) => koaPath.replace(/:(\w+)/g, '{$1}');

const operationId = (doc: RouteDoc) => doc.operationId ?? derivedOperationId(doc);

const derivedOperationId = (doc: RouteDoc) =>
  doc.method.toLowerCase() + doc.path.replace(/^\/api\/v1/, '').split(/[/.-]/).filter((s) => s !== '')
    .map((
      s,
    ) => (s.startsWith(':') ? `By${s.slice(1, 2).toUpperCase()}${s.slice(2)}` : s[0]!.toUpperCase() + s.slice(1))).join(
      '',
    );

function parametersOf(doc: RouteDoc): Parameter[] {
  const out: Parameter[] = [];
  for (const [, name] of doc.path.matchAll(/:(\w+)/g)) {
    out.push({ name: name!, in: 'path', required: true, schema: jsonSchemaOf(doc.params?.[name!] ?? uuidSchema) });
  }
  if (doc.query !== undefined) {
    const schema = jsonSchemaOf(doc.query);
    const required = new Set((schema['required'] as string[] | undefined) ?? []);
    for (
      const [name, property] of Object.entries((schema['properties'] as Record<string, JsonSchema> | undefined) ?? {})
    ) {
      const help = doc.queryHelp?.[name];
      out.push({
        name,
        in: 'query',
        required: required.has(name),
        ...(help === undefined ? {} : { description: help }),
        schema: property,
      });
    }
  }
  for (const header of doc.headers ?? []) {
    out.push({
      name: header.name,
      in: 'header',
      required: false,
      description: header.description,
      schema: { type: 'string' },
    });
  }
  return out;
}

function errorStatuses(doc: RouteDoc): number[] {
  const statuses = new Set(doc.errors ?? []);
  if (doc.path.includes(':') || doc.query !== undefined || doc.body !== undefined || (doc.headers ?? []).length > 0) {
    statuses.add(400);
  }
  if (doc.auth !== 'none') {
    statuses.add(401);
    statuses.add(403);
    statuses.add(429); // failed authentications are throttled (AUTH_FAILURE_LIMIT_*)
  }
  if (doc.body !== undefined) {
    statuses.add(413);
    statuses.add(415);
  }
  if (doc.path.startsWith('/api/')) statuses.add(503);
  return [...statuses].filter((s) => doc.responses[s] === undefined).sort();
}

function operationOf(doc: RouteDoc): Operation {
  const parameters = parametersOf(doc);
  const responses: Operation['responses'] = {};
  for (const [status, response] of Object.entries(doc.responses)) {
    responses[status] = {
      description: response.description,
      ...(response.headers === undefined ? {} : {
        headers: Object.fromEntries(
          Object.entries(response.headers).map(([k, v]) => [k, { description: v, schema: { type: 'string' } }]),
        ),
      }),
      ...(response.schema === undefined
        ? {}
        : { content: { [response.contentType ?? 'application/json']: { schema: jsonSchemaOf(response.schema) } } }),
    };
  }
  for (const status of errorStatuses(doc)) {
    responses[String(status)] = {
      description: ERROR_TEXT[status] ?? 'error',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return {
    operationId: operationId(doc),
    tags: [doc.tag],
    summary: doc.summary,
    ...(doc.description === undefined ? {} : { description: doc.description }),
    ...(doc.auth === 'none' ? { security: [] } : { security: SECURITY[doc.auth] }),
    ...(parameters.length === 0 ? {} : { parameters }),
    ...(doc.body === undefined ? {} : {
      requestBody: {
        required: doc.bodyOptional !== true,
        content: { 'application/json': { schema: jsonSchemaOf(doc.body) } },
      },
    }),
    responses,
  };
}

const packageVersion = (): string => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string })
      .version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
};

const bearer = (description: string) => ({ type: 'http', scheme: 'bearer', description });

/** The OpenAPI 3.1 document for these route declarations. */
export function buildOpenApi(docs: readonly RouteDoc[]): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  for (const doc of docs) {
    const path = openApiPath(doc.path);
    paths[path] ??= {};
    paths[path][doc.method.toLowerCase()] = operationOf(doc);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'devicetrail',
      version: packageVersion(),
      description: 'A fleet API for IoT devices whose source of truth is an append-only event log. JSON in and out; ' +
        'credentials are bearer secrets (`Authorization: Bearer …`); every answer carries `X-Request-Id` (an incoming sane one is kept as sent from a TRUSTED_PROXIES peer, otherwise suffixed to stay unique). ' +
        'Errors are `{"error": {code, message, details?}}`; a rejected request writes nothing.',
    },
    tags: [...new Set(docs.map((d) => d.tag))].map((name) => ({ name })),
    paths,
    components: {
      schemas: { Error: jsonSchemaOf(errorResponse) },
      securitySchemes: {
        adminToken: bearer(
          'an admin token (`dta_…`): `npm run admin -- create-token --name <name>`, or the bootstrap token in DATA_DIR/admin-token',
        ),
        provisioningKey: bearer('a provisioning key (`dtp_…`), from POST /api/v1/provisioning-keys'),
        deviceKey: bearer('the `deviceApiKey` the device registered with'),
        metricsToken: bearer('METRICS_TOKEN, which may read /metrics only'),
      },
    },
  };
}

type RouterLayer = { methods: string[]; path: string | RegExp };

/** Every `METHOD path` the app's Koa routers serve (HEAD, implied by GET, left out). */
export function registeredRoutes(app: Koa): string[] {
  const routes = new Set<string>();
  for (const middleware of app.middleware as ({ router?: { stack: RouterLayer[] } })[]) {
    for (const layer of middleware.router?.stack ?? []) {
      for (const method of layer.methods) if (method !== 'HEAD') routes.add(`${method} ${String(layer.path)}`);
    }
  }
  return [...routes].sort();
}

/** Routes served without a declaration, and declarations without a route. */
export function routeCoverage(app: Koa, docs: readonly RouteDoc[]): { undocumented: string[]; missing: string[] } {
  const served = new Set(registeredRoutes(app));
  const documented = new Set(docs.map((d) => `${d.method} ${d.path}`));
  return {
    undocumented: [...served].filter((r) => !documented.has(r)).sort(),
    missing: [...documented].filter((r) => !served.has(r)).sort(),
  };
}

/** Registers GET /openapi.json and GET /docs on a router without prefix. */
export function openApiRoutes(router: Router, docs: readonly RouteDoc[]): void {
  let cached: { json: string; html: string } | null = null;
  // built on first use: the declarations import every route module, all loaded by then
  const rendered = () => {
    if (cached === null) {
      const document = buildOpenApi(docs);
      cached = { json: JSON.stringify(document), html: renderDocsPage(document) };
    }
    return cached;
  };
  router.get('/openapi.json', (ctx: Context) => {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = rendered().json;
  });
  router.get('/docs', (ctx: Context) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
    ctx.body = rendered().html;
  });
}
