// The report fast path (plainValidReport) skips zod for common report shapes. It must never
// accept what the schema refuses, and what it accepts must be exactly what the schema returns.
// Generated near-valid reports probe every field at and beyond its limits.
import test from 'ava';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { parseReport, plainValidReport, reportBody } from '../../app/http/device-reports.ts';
import { resourceFieldNames, systemFieldNames } from '../../domain/device/events.ts';

/** Mostly ordinary text; now and then a boundary: empty, exactly max, max + 1, a special key. */
const text = (max: number) =>
  fc.oneof(
    { arbitrary: fc.string({ minLength: 1, maxLength: 8 }), weight: 8 },
    {
      arbitrary: fc.constantFrom(
        '',
        'x'.repeat(max),
        'x'.repeat(max + 1),
        '💥'.repeat(Math.ceil(max / 2)),
        '__proto__',
        'constructor',
      ),
      weight: 2,
    },
  );
const anyValue = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1.5, 101, -0.5, 1e308, [], {}, [1], { a: 1 }, '', 'running'),
  fc.double(),
  fc.integer(),
  fc.string({ maxLength: 4 }),
);
const serviceFields = {
  status: text(64),
  containerId: text(128),
  image: text(512),
  imageName: text(512),
  appId: fc.oneof(fc.integer(), fc.double(), text(8)),
  appName: text(256),
  imagePullError: text(2048),
  exitCode: fc.oneof(fc.integer(), fc.double()),
  restartCount: fc.oneof(fc.integer({ min: -2, max: 5 }), fc.double()),
  downloadProgress: fc.oneof(fc.double({ min: -1, max: 101 }), fc.integer({ min: -1, max: 101 })),
};
/** Known keys with plausible or borderline values, sometimes a wrong value, sometimes an unknown key. */
const fields = (known: Record<string, fc.Arbitrary<unknown>>) =>
  fc.tuple(
    fc.record(known, { requiredKeys: [] }),
    fc.nat(4),
    fc.dictionary(
      fc.oneof(fc.constantFrom(...Object.keys(known)), fc.constantFrom('extra', '__proto__', 'volumes', 'networks')),
      anyValue,
      { maxKeys: 2 },
    ),
  ).map(([ok, dice, odd]) => (dice === 0 ? { ...ok, ...odd } : ok)); // one object in five spoiled
const service = fields({
  ...serviceFields,
  serviceId: fc.oneof(fc.integer(), fc.double(), text(8)),
  serviceName: fc.oneof(text(128), fc.constantFrom('a', 'b')),
});
const app = fields({
  ...serviceFields,
  releaseId: fc.oneof(fc.integer(), text(128), fc.double()),
  commit: text(128),
  volumes: fc.array(text(256), { maxLength: 2 }),
  services: fc.oneof(
    fc.dictionary(fc.oneof(text(128), fc.constantFrom('a', 'b')), service, { maxKeys: 3 }),
    fc.array(service, { maxLength: 3 }),
  ),
});
const report = fields({
  apps: fc.oneof(
    fc.dictionary(text(64), app, { maxKeys: 3 }),
    fc.integer({ min: 99, max: 101 }).map((n) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [String(1000 + i), { status: 'Running' }]))
    ),
  ),
  update_status: text(64),
  config: fc.dictionary(text(128), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 2 }),
  ...Object.fromEntries(
    systemFieldNames.map((name) => [
      name,
      name === 'uptime'
        ? fc.oneof(fc.constant(null), fc.double(), fc.integer({ min: -1, max: 1e6 }))
        : fc.oneof(fc.constant(null), text(256)),
    ]),
  ),
  ...Object.fromEntries(
    resourceFieldNames.map((name) => [name, fc.oneof(fc.constant(null), fc.double(), fc.integer())]),
  ),
});

/** Valid values only: ordinary text and numbers within every limit. */
const okText = fc.string({ minLength: 1, maxLength: 8 });
const okService = fc.record({
  status: fc.constantFrom('Running', 'exited', 'Downloading'),
  containerId: okText,
  image: okText,
  imageName: okText,
  serviceId: fc.nat(99),
  appId: fc.nat(2000),
  appName: okText,
  exitCode: fc.integer({ min: -1, max: 255 }),
  restartCount: fc.nat(9),
  downloadProgress: fc.integer({ min: 0, max: 100 }),
}, { requiredKeys: [] });
const okApp = fc.record({
  appId: fc.nat(2000),
  appName: okText,
  status: fc.constantFrom('Running', 'exited'),
  releaseId: fc.oneof(fc.nat(), okText),
  commit: okText,
  services: fc.dictionary(okText, okService, { maxKeys: 3 }),
}, { requiredKeys: [] });
const okReport = fc.record({
  apps: fc.dictionary(fc.oneof(okText, fc.nat(2000).map(String)), okApp, { maxKeys: 3 }),
  update_status: okText,
  ...Object.fromEntries(systemFieldNames.map((name) => [name, name === 'uptime' ? fc.nat() : okText])),
  ...Object.fromEntries(
    resourceFieldNames.map((
      name,
    ) => [name, fc.oneof(fc.constant(null), fc.double({ noNaN: true, noDefaultInfinity: true }))]),
  ),
}, { requiredKeys: [] });
const lengths = [0, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 2047, 2048, 2049];
const edge = fc.constantFrom<unknown>(null, true, -1, 0, 1.5, 99.5, 100, 100.5, 101, -0.5, 2 ** 53, {}, [], ['a'], {
  a: 1,
}, ...lengths.map((n) => 'x'.repeat(n)));
const names = fc.constantFrom(
  '__proto__',
  'extra',
  'volumes',
  'config',
  'status',
  'image',
  'exitCode',
  'releaseId',
  'services',
  'serviceName',
  'serviceId',
  'imageName',
  'appId',
  'is_online',
  'uptime',
  'cpu_usage',
  'hostname',
  'x'.repeat(65),
  'x'.repeat(129),
  '',
);

/** Changes one place of a valid report: replaces a value, or adds a key, at a depth the steps choose. */
function mutate(
  report: Record<string, unknown>,
  steps: number[],
  pick: number,
  value: unknown,
  name: string,
  add: boolean,
): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(report)) as Record<string, unknown>;
  let node = copy;
  for (const step of steps) {
    const keys = Object.keys(node).filter((k) => typeof node[k] === 'object' && node[k] !== null);
    if (keys.length === 0 || step % (keys.length + 1) === keys.length) break;
    node = node[keys[step % (keys.length + 1)]!] as Record<string, unknown>;
  }
  const keys = Object.keys(node);
  if (add || keys.length === 0) {
    Object.defineProperty(node, name, { value, enumerable: true, writable: true, configurable: true });
  } else node[keys[pick % keys.length]!] = value;
  return copy;
}

const nearValid = fc.tuple(
  okReport,
  fc.array(fc.nat(), { minLength: 0, maxLength: 4 }),
  fc.nat(),
  edge,
  names,
  fc.boolean(),
  fc.nat(3),
)
  .map((
    [report, steps, pick, value, name, add, dice],
  ) => (dice === 0 ? report : mutate(report, steps, pick, value, name, add)));

test('the fast path accepts only reports the schema accepts, and returns what the schema returns', (t) => {
  let fast = 0;
  let slowValid = 0;
  let invalid = 0;
  fc.assert(
    fc.property(fc.oneof(report, nearValid), (generated) => {
      // the service sees what JSON.parse builds (own "__proto__" keys, no -0, no Infinity, no NaN)
      const text = JSON.stringify(generated);
      const value: unknown = JSON.parse(text);
      const schema = reportBody.safeParse(JSON.parse(text));
      if (plainValidReport(value)) {
        fast += 1;
        if (!schema.success || !isDeepStrictEqual(schema.data, JSON.parse(text))) return false;
      } else if (schema.success) slowValid += 1;
      else invalid += 1;
      return true;
    }),
    { numRuns: 10_000, seed: 7 },
  );
  t.log(
    `10,000 generated reports: ${fast} took the fast path, ${slowValid} valid via the schema only, ${invalid} invalid`,
  );
  // the generator reaches all three outcomes, so the comparison above is not vacuous
  t.true(
    fast > 1_000 && slowValid > 300 && invalid > 1_000,
    `fast ${fast}, schema-only ${slowValid}, invalid ${invalid}`,
  );
});

test('parseReport names the problem of an invalid report, as the schema does', (t) => {
  const error = t.throws(() => parseReport({ cpu_usage: 'high' }, 'body.x'));
  t.regex(String(error?.message), /body\.x\.cpu_usage/);
  t.throws(() => parseReport({ apps: { 1: { restartCount: -1 } } }, 'body.x'));
  t.deepEqual(parseReport({ apps: { 1: { status: 'Running' } }, cpu_usage: 3 }, 'body.x'), {
    report: { apps: { 1: { status: 'Running' } }, cpu_usage: 3 },
    ignored: [],
  });
});

test("parseReport keys the agent's list of services by serviceName and names the fields it ignores", (t) => {
  const parsed = parseReport({
    apps: {
      1001: {
        appId: 1001,
        services: [
          { serviceName: 'web', imageName: 'web:1', status: 'running', state: 'running', config: { image: 'web:1' } },
          { serviceName: 'db', imageName: 'db:2', status: 'exited' },
        ],
      },
    },
    is_online: true,
  }, 'body.x');
  t.deepEqual(parsed.report, {
    apps: {
      1001: {
        appId: 1001,
        services: {
          web: { serviceName: 'web', imageName: 'web:1', status: 'running' },
          db: { serviceName: 'db', imageName: 'db:2', status: 'exited' },
        },
      },
    },
  });
  t.deepEqual(parsed.ignored, [
    // of a service's config only `environment` is kept (hashed later; README "Secrets"), and a config left empty goes
    'body.x.apps.1001.services.0.config.image',
    'body.x.apps.1001.services.0.state',
    'body.x.is_online',
  ]);
});
