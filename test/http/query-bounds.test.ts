// Numbers in query strings are bounded at the edge (issue #16, finding 9): a number beyond what
// PostgreSQL takes (offset=1e308, after_version=99999999999999999999) was a 500; every numeric
// query parameter of every admin API route is now a 400 naming the parameter.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { jsonSchemaOf } from '../../app/http/openapi/openapi.ts';
import { routeDocs } from '../../app/http/openapi/route-docs.ts';
import { intQuery } from '../../app/http/request.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';

let app: TestApp;
let uuid: string;
let webhookId: string;

test.before(async () => {
  app = await startTestApp({ webhookPolicy: { allowPrivate: true } }); // a webhook on 127.0.0.1, never delivered
  uuid = (await app.registerDevice((await app.createProvisioningKey()).key)).uuid;
  const hook = await app.request('POST', '/api/v1/webhooks', {
    token: app.adminToken,
    body: { url: 'http://127.0.0.1:9/never-delivered', event_types: ['device.offline'] },
  });
  if (hook.status !== 201) throw new Error(`webhook: ${hook.status} ${hook.text}`);
  webhookId = hook.body.id;
});
test.after.always(async () => {
  await app?.close();
});

/** Beyond any bound, or not a whole number: refused by every numeric parameter. */
const HOSTILE = ['1e308', '99999999999999999999', '9007199254740993', '-1', '1.5', 'NaN', 'Infinity'];

test.serial('the reported cases: offset=1e308 and 99999999999999999999, after_version=99999999999999999999 → 400 naming the parameter', async (t) => {
  for (
    const [path, name] of [
      ['/api/v1/devices?offset=1e308', 'offset'],
      ['/api/v1/devices?offset=99999999999999999999', 'offset'],
      [`/api/v1/devices/${uuid}/events?after_version=99999999999999999999`, 'after_version'],
    ]
  ) {
    const response = await app.request('GET', path!, { token: app.adminToken });
    t.is(response.status, 400, `${path}: ${response.text}`);
    t.regex(response.body.error.message, new RegExp(`^query\\.${name}: must be a whole number from 0 to \\d+$`));
  }
  t.deepEqual(app.errors, [], 'no unexpected error reached the error log');
});

test.serial('every numeric query parameter of every admin API route: out-of-range or non-numeric text is a 400 naming it, a value in range is served', async (t) => {
  const concrete = (path: string) => path.replace(':uuid', uuid).replace(':id', webhookId);
  let checked = 0;
  for (const doc of routeDocs) {
    if (doc.auth !== 'admin' || doc.method !== 'GET' || !doc.path.startsWith('/api/v1/') || doc.query === undefined) {
      continue;
    }
    if (doc.path.endsWith('/stream') || doc.path.includes('/diff')) continue; // an endless answer; diff needs `from`
    const properties = (jsonSchemaOf(doc.query)['properties'] ?? {}) as Record<string, { type?: string }>;
    for (const [name, property] of Object.entries(properties)) {
      if (property.type !== 'integer' && property.type !== 'number') continue;
      for (const value of HOSTILE) {
        const response = await app.request('GET', `${concrete(doc.path)}?${name}=${encodeURIComponent(value)}`, {
          token: app.adminToken,
        });
        t.is(response.status, 400, `${doc.path}?${name}=${value}: ${response.text}`);
        t.regex(
          String(response.body?.error?.message),
          new RegExp(`^query\\.${name}: `),
          `${doc.path}?${name}=${value}`,
        );
      }
      const fine = await app.request('GET', `${concrete(doc.path)}?${name}=1`, { token: app.adminToken });
      t.is(fine.status, 200, `${doc.path}?${name}=1: ${fine.text}`);
      checked += 1;
    }
  }
  t.true(checked >= 7, `numeric parameters checked: ${checked}`);
  t.deepEqual(app.errors, [], 'no unexpected error reached the error log');
});

test('intQuery: plain digits within the bounds only', (t) => {
  const schema = intQuery(0, 1000);
  t.is(schema.parse('0'), 0);
  t.is(schema.parse('1000'), 1000);
  t.is(schema.parse('007'), 7);
  for (const value of [...HOSTILE, '1001', '0x10', '', ' 5', '5 ', '+5', '1e3', ['1', '2'], undefined]) {
    const result = schema.safeParse(value);
    t.false(result.success, JSON.stringify(value));
  }
  t.throws(() => intQuery(0, 2 ** 60), { message: /safe integers/ });
});

test.serial('a huge offset within the bound reads an empty page, not an error', async (t) => {
  const response = await app.request('GET', '/api/v1/devices?offset=1000000', { token: app.adminToken });
  t.is(response.status, 200, response.text);
  const count = await app.db.pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM devices`,
  );
  t.is(count, 1);
});
