// fast-check arbitraries for hostile HTTP requests against any route: malformed JSON, wrong
// types, missing and extra fields, huge strings and arrays, deep nesting, unicode, NUL bytes and
// lone surrogates, invalid uuids and timestamps, wrong content types, duplicate keys, oversized
// bodies, odd methods, paths, query strings and headers. Each starts from the route's valid
// example (route-examples.ts) so most requests get past authentication into validation.
import fc from 'fast-check';
import type { HttpRequest } from './http-client.ts';
import type { ExampleFixture } from './route-examples.ts';
import { Buffer } from 'node:buffer';

/** What a generated request needs: the route, its example, and credentials to choose from. */
export type FuzzTarget = {
  route: string;
  example: (fx: ExampleFixture) => HttpRequest;
  rightCredential: string | undefined;
};

const weirdStrings: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'null',
    'undefined',
    'true',
    '-1',
    '0',
    '1e309',
    'NaN',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udfffy',
    '💥'.repeat(50),
    '2026-13-45T99:99:99Z',
    '2026-02-30T00:00:00',
    'yesterday',
    '0000-00-00T00:00:00Z',
    '+275760-09-13T00:00:01Z',
    '12345678-1234-1234-1234-123456789abz',
    '12345678123412341234123456789abc',
    '{{uuid}}',
    '../../etc/passwd',
    '<script>alert(1)</script>',
    "'; DROP TABLE events; --",
    '%00',
    'Bearer x',
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.integer({ min: 1, max: 70_000 }).map((n) => 'x'.repeat(n)),
);

/** Short enough for a URL (a request head over 16 KiB is refused by Node before the app). */
const shortWeird = weirdStrings.filter((s) => s.length <= 1000);

/** Percent-encodes every byte of the UTF-8 form (lone surrogates become U+FFFD). */
const pct = (s: string): string =>
  [...Buffer.from(s, 'utf8')].map((
    b,
  ) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(b))
    ? String.fromCharCode(b)
    : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)
  ).join('');

const weirdJson: fc.Arbitrary<unknown> = fc.oneof(
  weirdStrings,
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, [], {}, [null], {
    '': null,
  }),
  fc.jsonValue({ maxDepth: 4 }),
  fc.integer({ min: 1, max: 20_000 }).map((n) => Array.from({ length: n }, (_, i) => i)),
  fc.integer({ min: 1, max: 5_000 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]))),
  fc.integer({ min: 30, max: 200 }).map((depth) => {
    let v: unknown = 'bottom';
    for (let i = 0; i < depth; i += 1) v = i % 2 === 0 ? [v] : { d: v };
    return v;
  }),
);

/** Mutates a JSON value somewhere: drop, add, retype or replace a field, at any depth. */
function mutate(value: unknown): fc.Arbitrary<unknown> {
  if (value === null || typeof value !== 'object') return weirdJson;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const options: fc.Arbitrary<unknown>[] = [
    weirdJson,
    fc.tuple(weirdStrings, weirdJson).map(([k, v]) => (Array.isArray(value) ? [...value, v] : { ...value, [k]: v })),
  ];
  if (entries.length > 0) {
    options.push(
      fc.constantFrom(...entries.map(([k]) => k)).map((k) => {
        if (Array.isArray(value)) return value.filter((_, i) => String(i) !== k);
        const { [k]: _dropped, ...rest } = value as Record<string, unknown>;
        return rest;
      }),
    );
    options.push(
      fc.constantFrom(...entries).chain(([k, v]) =>
        mutate(v).map((
          m,
        ) => (Array.isArray(value) ? value.map((x, i) => (String(i) === k ? m : x)) : { ...value, [k]: m }))
      ),
    );
  }
  return fc.oneof(...options);
}

const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** A raw JSON text with a flaw, from a valid body. */
const brokenJsonText = (valid: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.integer({ min: 0, max: Math.max(0, valid.length - 1) }).map((n) => valid.slice(0, n)),
    fc.constantFrom(
      `${valid},`,
      `${valid}}`,
      `[${valid}`,
      valid.replaceAll('"', "'"),
      `${valid} // comment`,
      `{"a": NaN}`,
      '{"a": 01}',
      '{"a": "\\x41"}',
      '{"a": "\\ud800"}',
      '{"a": "\\u0000"}',
      '\ufeff{}',
      '{,}',
      'nul',
      '"unterminated',
    ),
    // duplicate keys: the last one wins in JSON.parse, and must still be validated
    fc.constant(valid.startsWith('{') && valid.length > 2 ? `{"uuid":"not-a-uuid",${valid.slice(1)}` : '{"a":1,"a":2}'),
    fc.constant(valid.replace(/^\{/, '{"is_active":"yes","is_active":true,"events":[],"events":{},')),
    fc.integer({ min: 2_000, max: 150_000 }).map((depth) => '['.repeat(depth) + ']'.repeat(depth)),
  );

const contentTypes = fc.constantFrom(
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/json; charset=utf-16',
  'application/merge-patch+json',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  '',
  'json',
);

/** One hostile request for `target`; `fx` names real records, `credentials` real secrets. */
export function fuzzRequest(
  target: FuzzTarget,
  fx: ExampleFixture,
  credentials: readonly string[],
  bodyLimitBytes: number,
): fc.Arbitrary<HttpRequest & { kind: string }> {
  const example = target.example(fx);
  const exampleBody = example.body === undefined ? {} : example.body;
  const exampleText = JSON.stringify(exampleBody);
  const [base, query = ''] = example.path.split('?') as [string, string?];
  const pattern = target.route.slice(target.route.indexOf(' ') + 1);

  const right = target.rightCredential;
  const auth = fc.oneof(
    { weight: 8, arbitrary: fc.constant(right) },
    { weight: 2, arbitrary: fc.constantFrom(undefined, ...credentials) },
    { weight: 1, arbitrary: shortWeird.map((s) => `Bearer ${s}`.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?')) },
    // the scheme in any case (RFC 7235; issue #16, finding 12)
    { weight: 1, arbitrary: fc.constantFrom(right?.replace(/^Bearer/, 'bearer'), right?.replace(/^Bearer/, 'BEARER')) },
  ).map((header): Record<string, string> => (header === undefined ? {} : { Authorization: header }));

  // path: the example's, or one parameter replaced by something else
  const segments = pattern.split('/');
  const paramIndexes = segments.map((s, i) => (s.startsWith(':') ? i : -1)).filter((i) => i >= 0);
  const path = paramIndexes.length === 0 ? fc.constant(base) : fc.oneof(
    { weight: 3, arbitrary: fc.constant(base) },
    {
      weight: 2,
      arbitrary: fc.tuple(
        fc.constantFrom(...paramIndexes),
        fc.oneof(
          fc.uuid().map(String),
          shortWeird.map(pct),
          fc.constantFrom('%', '%zz', '%E0%A4%A', '..', '.', '%2F', 'a%2Fb', '%00', 'x'.repeat(3000)),
        ),
      )
        .map(([index, value]) => base.split('/').map((s, i) => (i === index ? value : s)).join('/')),
    },
  );

  const queryString = fc.oneof(
    { weight: 3, arbitrary: fc.constant(query) },
    {
      weight: 2,
      arbitrary: fc.array(
        fc.tuple(
          fc.constantFrom(
            'limit',
            'offset',
            'since',
            'until',
            'at',
            'from',
            'to',
            'type',
            'after',
            'after_version',
            'window',
            'top',
            'fleet',
            'in_sync',
            'active',
            'status',
            'include_deleted',
            'aggregate_id',
            'aggregate_type',
            'unknown',
            '',
          ),
          shortWeird,
        ),
        { maxLength: 4 },
      )
        .map((pairs) => [query, ...pairs.map(([k, v]) => `${pct(k)}=${pct(v)}`)].filter((p) => p !== '').join('&')),
    },
  );

  const extraHeaders: fc.Arbitrary<Record<string, string>> = fc.oneof(
    { weight: 4, arbitrary: fc.constant({}) },
    {
      weight: 1,
      arbitrary: fc.record({
        'If-Match': fc.constantFrom('"1"', '"999999999999"', '*', 'W/"1"', 'garbage', '"-1"', '"1", "2"'),
        'If-None-Match': fc.constantFrom('"0"', '*', 'nope', '"1"'),
        'Last-Event-ID': fc.constantFrom('garbage', 'eyJ4IjoxfQ', '0', 'x'.repeat(3000)),
        'X-Request-Id': fc.constantFrom('ok-id', 'has spaces', '<x>', 'x'.repeat(500)),
        // the device agent's credential header and encoded bodies (issue #15)
        'X-Device-API-Key': fc.constantFrom('', 'garbage', 'dta_not-a-token', 'x'.repeat(600), 'has spaces'),
        'Content-Encoding': fc.constantFrom('gzip', 'deflate', 'br', 'compress', 'identity', 'gzip, gzip'),
      }, { requiredKeys: [] }),
    },
  );

  type Body = { kind: string; body?: string | Buffer; contentType?: string };
  const body: fc.Arbitrary<Body> = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.constant<Body>({ kind: 'example', body: exampleText, contentType: 'application/json' }),
    },
    {
      weight: 6,
      arbitrary: mutate(exampleBody).map((v): Body => ({
        kind: 'mutated',
        body: JSON.stringify(v) ?? 'null',
        contentType: 'application/json',
      })),
    },
    {
      weight: 2,
      arbitrary: weirdJson.map((v): Body => ({
        kind: 'random json',
        body: JSON.stringify(v) ?? 'null',
        contentType: 'application/json',
      })),
    },
    {
      weight: 2,
      arbitrary: brokenJsonText(exampleText).map((text): Body => ({
        kind: 'malformed json',
        body: text,
        contentType: 'application/json',
      })),
    },
    {
      weight: 1,
      arbitrary: contentTypes.map((type): Body => ({
        kind: 'wrong content type',
        body: exampleText,
        contentType: type,
      })),
    },
    { weight: 1, arbitrary: fc.constant<Body>({ kind: 'no body', contentType: 'application/json' }) },
    { weight: 1, arbitrary: fc.constant<Body>({ kind: 'empty body', body: '', contentType: 'application/json' }) },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes): Body => ({
        kind: 'binary',
        body: Buffer.from(bytes),
        contentType: 'application/json',
      })),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: bodyLimitBytes + 1, max: bodyLimitBytes * 2 }).map((n): Body => ({
        kind: 'oversized',
        body: `{"x":"${'a'.repeat(n)}"}`,
        contentType: 'application/json',
      })),
    },
  );

  const method = fc.oneof({ weight: 9, arbitrary: fc.constant(example.method) }, {
    weight: 1,
    arbitrary: fc.constantFrom(...methods),
  });

  return fc.record({ method, path, queryString, auth, extraHeaders, body }).map(
    ({ method, path, queryString, auth, extraHeaders, body }) => {
      const headers: Record<string, string> = { ...extraHeaders, ...auth };
      // GET and DELETE usually go without a body; sometimes with one anyway
      const withBody = body.body !== undefined &&
        (!['GET', 'DELETE', 'OPTIONS'].includes(method) || body.kind === 'mutated');
      if (withBody && body.contentType !== '' && body.contentType !== undefined) {
        headers['Content-Type'] = body.contentType;
      }
      return {
        kind: withBody ? body.kind : 'no body',
        method,
        path: queryString === '' ? path : `${path}?${queryString}`,
        headers,
        ...(withBody ? { body: body.body! } : {}),
      };
    },
  );
}
