// Fuzzing every route with fast-check (test/reliability/fuzz-requests.ts): over 10,000
// hostile requests. Never a 5xx; every error a JSON body whose message names the problem;
// not one row written for a rejected request (the write audit counts every row of every
// table); and no secret in the logs or error bodies afterwards. Seeded: FUZZ_SEED=<n>
// replays a run; the seed is printed.
import test from 'ava';
import fc from 'fast-check';
import { registeredRoutes } from '../../app/http/openapi/openapi.ts';
import { routeDocs } from '../../app/http/openapi/route-docs.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';
import { fuzzRequest, type FuzzTarget } from './fuzz-requests.ts';
import type { HttpRequest, HttpResponse } from './http-client.ts';
import { type ReliabilityApp, startReliabilityApp } from './reliability-app.ts';
import { type ExampleFixture, plantSecret, routeExamples } from './route-examples.ts';
import { findSecrets } from './secrets.ts';
import { Buffer } from 'node:buffer';

const CHUNKS = 5;
const PER_CHUNK = 2100;
const seed = Number(process.env['FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

let app: ReliabilityApp;
let arbitrary: fc.Arbitrary<HttpRequest & { kind: string; route: string }>;
const secrets: string[] = [];
const tally = {
  tried: 0,
  statuses: {} as Record<string, number>,
  kinds: {} as Record<string, number>,
  routes: new Set<string>(),
  rejected: 0,
};
const failures: string[] = [];

// a 400's message starts by naming where the problem is
const NAMES_THE_PROBLEM =
  /^(body|query|path|path parameter [a-z_]+|request body|[A-Za-z-]+ header|If-Match|If-None-Match|Last-Event-ID)\b/;

test.before(async () => {
  app = await startReliabilityApp();
  await ensurePartitionsAhead(app.db.pool, new Date(), 7);
  const admin = { Authorization: `Bearer ${app.adminToken}` };
  const must = async (r: Promise<HttpResponse>) => {
    const response = await r;
    if (response.status >= 300) throw new Error(`fuzz setup: ${response.status} ${response.text}`);
    return response.json;
  };
  const pk = await must(
    app.request({ method: 'POST', path: '/api/v1/provisioning-keys', headers: admin, body: { fleet_id: 'fuzz' } }),
  );
  const victim = await must(
    app.request({
      method: 'POST',
      path: '/api/v1/provisioning-keys',
      headers: admin,
      body: { fleet_id: 'fuzz-victim' },
    }),
  );
  const register = async () => {
    const uuid = crypto.randomUUID();
    const key = `fuzz-device-${crypto.randomUUID()}`;
    await must(
      app.request({
        method: 'POST',
        path: '/api/v1/device/register',
        headers: { Authorization: `Bearer ${pk.key}` },
        body: { uuid, deviceName: 'fuzz', deviceType: 'rpi4', deviceApiKey: key },
      }),
    );
    return { uuid, key };
  };
  const own = await register();
  const other = await register();
  const adminDevice = await register();
  const hook = await must(
    app.request({
      method: 'POST',
      path: '/api/v1/webhooks',
      headers: admin,
      body: { url: 'http://127.0.0.1:9/a', event_types: ['*'] },
    }),
  );
  const victimHook = await must(
    app.request({
      method: 'POST',
      path: '/api/v1/webhooks',
      headers: admin,
      body: { url: 'http://127.0.0.1:9/b', event_types: ['*'] },
    }),
  );
  secrets.push(app.adminToken, pk.key, victim.key, own.key, other.key, adminDevice.key, hook.secret, victimHook.secret);
  const fx: ExampleFixture = {
    device: own.uuid,
    deviceKey: own.key,
    adminDevice: adminDevice.uuid,
    victimKeyId: victim.id,
    webhookId: hook.id,
    victimWebhookId: victimHook.id,
    secretMarker: await plantSecret((r) => app.request(r), app.adminToken, adminDevice.uuid),
  };
  const rightCredential = {
    admin: app.adminToken,
    metrics: app.adminToken,
    device: own.key,
    provisioning_key: pk.key,
    none: undefined,
  } as const;
  const targets: FuzzTarget[] = registeredRoutes(app.app).map((route) => {
    const doc = routeDocs.find((d) => `${d.method} ${d.path}` === route);
    const example = routeExamples[route];
    if (doc === undefined || example === undefined) {
      throw new Error(`${route}: no declaration in app/http/openapi/route-docs.ts or no example in route-examples.ts`);
    }
    const credential = rightCredential[doc.auth];
    return { route, example, rightCredential: credential === undefined ? undefined : `Bearer ${credential}` };
  });
  const others = [app.adminToken, pk.key, own.key, other.key, 'not-a-known-key-123'].map((s) => `Bearer ${s}`);
  arbitrary = fc.oneof(
    ...targets.map((target) =>
      fuzzRequest(target, fx, others, app.deps.bodyLimitKb * 1024).map((r) => ({ ...r, route: target.route }))
    ),
  );
  await app.newWrites();
});

test.after.always(async () => {
  const rejects = Object.entries(tally.statuses).filter(([s]) => Number(s) >= 400).reduce((n, [, c]) => n + c, 0);
  console.log(
    `\nfuzz: ${tally.tried} requests tried over ${tally.routes.size} routes (seed ${seed}); statuses ${
      JSON.stringify(tally.statuses)
    }; ${rejects} rejected, ${failures.length} failures`,
  );
  console.log(`fuzz: request kinds ${JSON.stringify(tally.kinds)}`);
  await app?.close();
});

/** A request for a failure message; secrets in the Authorization header are masked. */
function describe(r: HttpRequest): string {
  const headers = { ...r.headers };
  if (headers['Authorization'] !== undefined) {
    headers['Authorization'] = headers['Authorization'].replace(/[\x21-\x7e]{6,}$/, (s) => `${s.slice(0, 4)}…`);
  }
  return `${r.method} ${r.path.slice(0, 160)} ${JSON.stringify(headers).slice(0, 160)} ${
    String(Buffer.isBuffer(r.body) ? `<${r.body.length} bytes>` : r.body ?? '').slice(0, 200)
  }`;
}

async function runChunk(chunk: number): Promise<number> {
  const requests = fc.sample(arbitrary, { numRuns: PER_CHUNK, seed: seed + chunk });
  for (const request of requests) {
    tally.tried += 1;
    tally.routes.add(request.route);
    tally.kinds[request.kind] = (tally.kinds[request.kind] ?? 0) + 1;
    let response: HttpResponse;
    try {
      response = await app.request(request);
    } catch (error) {
      failures.push(`no answer (${(error as Error).message}) to ${describe(request)}`);
      continue;
    }
    tally.statuses[response.status] = (tally.statuses[response.status] ?? 0) + 1;
    const writes = await app.newWrites();
    if (response.status >= 500) {
      failures.push(`${response.status} ${response.text.slice(0, 300)} for ${describe(request)}`);
    }
    if (response.status < 400) continue;
    tally.rejected += 1;
    if (writes.length > 0) {
      failures.push(
        `${response.status} rejected, yet wrote ${JSON.stringify(writes.slice(0, 5))}: ${describe(request)}`,
      );
    }
    const error = response.json?.error;
    if (typeof error?.code !== 'string' || typeof error?.message !== 'string' || error.message.length < 5) {
      failures.push(
        `${response.status} without a JSON error body (${response.text.slice(0, 100)}): ${describe(request)}`,
      );
    } else if (response.status === 400 && !NAMES_THE_PROBLEM.test(error.message)) {
      failures.push(
        `400 whose message does not say where the problem is ("${error.message.slice(0, 150)}"): ${describe(request)}`,
      );
    }
  }
  return requests.length;
}

for (let chunk = 0; chunk < CHUNKS; chunk += 1) {
  test.serial(`fuzz chunk ${chunk + 1}/${CHUNKS}: ${PER_CHUNK} hostile requests — no 5xx, JSON errors naming the problem, no writes on rejects`, async (t) => {
    t.timeout(300_000);
    const before = failures.length;
    const n = await runChunk(chunk);
    t.is(n, PER_CHUNK);
    t.deepEqual(
      failures.slice(before, before + 15),
      [],
      `seed ${seed + chunk} (FUZZ_SEED=${seed} replays the run); ${failures.length - before} failures`,
    );
  });
}

test.serial('the fuzz covered every route with over 10,000 requests, most of them rejected', (t) => {
  t.true(tally.tried >= 10_000, `${tally.tried} tried`);
  t.is(tally.routes.size, registeredRoutes(app.app).length);
  t.true(tally.rejected > tally.tried / 2, `${tally.rejected} rejected`);
  t.log(`${tally.tried} requests tried, ${tally.rejected} rejected, statuses ${JSON.stringify(tally.statuses)}`);
});

test.serial('no secret shows in the logs or error bodies the fuzz produced', (t) => {
  const found = findSecrets(secrets, [{ name: 'logs', text: app.logLines.join('') }, {
    name: 'error bodies',
    text: app.errorBodies.join('\n'),
  }]);
  t.deepEqual(found, []);
});
