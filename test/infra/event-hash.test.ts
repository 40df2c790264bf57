// The hash chain's canonical JSON (infra/event-store/event-hash.ts) was rewritten for speed
// (issue #19): every stored hash depends on it, so it must give the same text as the first
// definition, kept here, for any value an event may hold.
import test from 'ava';
import fc from 'fast-check';
import { canonicalJson } from '../../infra/event-store/event-hash.ts';

/** The first definition (until 2026-12-06). */
function reference(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  const entries = Object.keys(value).sort()
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${reference((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

// JSON values, with undefined members (dropped by both) and odd keys and strings
const leaf = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.double({ noNaN: false }),
  fc.integer(),
  fc.string({ unit: 'binary' }),
  fc.constant(undefined),
);
const value = fc.letrec((tie) => ({
  any: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('sparse'), tie('object')),
  array: fc.array(tie('any'), { maxLength: 6 }),
  sparse: fc.sparseArray(tie('any'), { maxLength: 6 }),
  object: fc.dictionary(
    fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('', '__proto__', 'a', 'b', '1', '01')),
    tie('any'),
    {
      maxKeys: 6,
    },
  ),
})).any;

test("canonicalJson gives the first definition's text for any JSON-like value", (t) => {
  fc.assert(fc.property(value, (v) => canonicalJson(v) === reference(v)), { numRuns: 5000 });
  t.is(
    canonicalJson({ b: 1, a: [true, null, { d: undefined, c: 'x' }], e: undefined }),
    '{"a":[true,null,{"c":"x"}],"b":1}',
  );
  t.is(canonicalJson({}), '{}');
  t.is(canonicalJson([]), '[]');
  t.is(canonicalJson({ '': 0, a: 1 }), '{"":0,"a":1}');
});

test('the comparison can fail: a definition that keeps undefined members is caught', (t) => {
  const wrong = (v: unknown) => JSON.stringify(v);
  t.throws(() => fc.assert(fc.property(value, (v) => wrong(v) === reference(v)), { numRuns: 5000 }));
});
