// Where webhooks may go (issue #16, finding 7: deliveries could target loopback, private and
// link-local addresses, the first 1,000 characters of any answer were readable, and error texts
// allowed port scans). No traffic leaves this machine: host names resolve through a stub
// resolver (names under .invalid, which the system resolver cannot answer, so a delivery that
// arrives proves the connection went to the stub's address), receivers listen on 127.0.0.1.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { feedEventJson } from '../../infra/realtime/feed.ts';
import { storedEventRow } from '../../domain/recorded-event.ts';
import {
  nonGlobalKind,
  type ResolvedAddress,
  resolveWebhookTarget,
  type WebhookAddressPolicy,
} from '../../infra/webhooks/address-policy.ts';
import { WebhookWorker } from '../../infra/webhooks/delivery.ts';
import { createWebhook, enqueueDeliveries } from '../../infra/webhooks/registry.ts';
import { responseExcerpt } from '../../infra/webhooks/webhook-post.ts';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';

const PUBLIC = '93.184.215.14'; // only ever an answer of the stub: nothing connects to it

/** A stub resolver: fixed answers by name (a function may change its answer), counting questions. */
function stubResolver(answers: Record<string, string[] | (() => string[])>) {
  const asked: string[] = [];
  const resolve = async (hostname: string): Promise<readonly ResolvedAddress[]> => {
    asked.push(hostname);
    const answer = answers[hostname];
    if (answer === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    }
    return (typeof answer === 'function' ? answer() : answer).map((address) => ({
      address,
      family: address.includes(':') ? 6 : 4,
    }));
  };
  return { asked, resolve };
}

type Received = { method: string; url: string; headers: IncomingMessage['headers']; body: string };

/** A receiver on 127.0.0.1 answering with `reply` (per request), recording what it got. */
async function receiver(reply: (req: Received, res: ServerResponse) => void = (_q, res) => res.end('ok')) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const got = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      received.push(got);
      reply(got, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let app: TestApp;
let answerForRebind = [PUBLIC];
const resolver = stubResolver({
  'public.hooks.invalid': [PUBLIC],
  'intranet.hooks.invalid': ['10.20.30.40'],
  'mixed.hooks.invalid': [PUBLIC, '127.0.0.1'],
  'v6-private.hooks.invalid': ['fd00::1'],
  'mapped.hooks.invalid': ['::ffff:169.254.169.254'],
  localhost: ['127.0.0.1', '::1'],
  'rebind.hooks.invalid': () => answerForRebind,
  'receiver.hooks.invalid': ['127.0.0.1'],
});
const strict: WebhookAddressPolicy = { allowPrivate: false, resolve: resolver.resolve };
const optedIn: WebhookAddressPolicy = { allowPrivate: true, resolve: resolver.resolve };

test.before(async () => {
  app = await startTestApp({ webhookPolicy: strict });
});
test.after.always(async () => {
  await app?.close();
});

const webhookCount = () =>
  app.db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM webhooks`);

/** A worker that makes one attempt per delivery, run by hand (runOnce) with `policy`. */
const worker = (policy: WebhookAddressPolicy, timeoutMs = 5000) =>
  new WebhookWorker({ pool: app.db.pool, maxAttempts: 1, timeoutMs, addressPolicy: policy, log: () => {} });

/** Queues one delivery of a real event (written through the API, so it carries the caller's IP and user agent) to a webhook. */
async function queueDelivery(webhookId: string): Promise<void> {
  const key = await app.createProvisioningKey();
  const { uuid } = await app.registerDevice(key.key);
  const event = await app.db.pool.one(sql.type(storedEventRow)`
    SELECT event_id, event_type, aggregate_type, aggregate_id, aggregate_version, global_position,
           transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash
      FROM events WHERE aggregate_id = ${uuid} AND event_type = 'device.provisioned'`);
  await enqueueDeliveries(app.db.pool, [webhookId], event, feedEventJson(event));
}

async function attemptsOf(webhookId: string) {
  const response = await app.request('GET', `/api/v1/webhooks/${webhookId}/deliveries`, { token: app.adminToken });
  return response.body.deliveries.flatMap((d: { attempt_log: unknown[] }) => d.attempt_log);
}

async function storedWebhook(url: string, includeClientInfo = false): Promise<string> {
  const webhook = await createWebhook(app.db.pool, {
    url,
    event_types: ['*'],
    secret: 'targets-test-secret-0123456789',
    description: null,
    include_client_info: includeClientInfo,
    created_by: 'test',
    created_at: new Date().toISOString(),
  });
  return webhook.id;
}

test('the address policy: loopback, private, link-local, unique-local, multicast, unspecified and other non-global addresses, IPv4 and IPv6, are not public', (t) => {
  const notPublic: Record<string, RegExp> = {
    '127.0.0.1': /^loopback$/,
    '127.255.255.254': /^loopback$/,
    '10.1.2.3': /^private$/,
    '172.16.0.1': /^private$/,
    '172.31.255.255': /^private$/,
    '192.168.1.1': /^private$/,
    '169.254.169.254': /^link-local$/,
    '100.64.0.1': /^shared/,
    '0.0.0.0': /^unspecified$/,
    '0.1.2.3': /^reserved/,
    '224.0.0.1': /multicast/,
    '239.255.255.250': /multicast/,
    '255.255.255.255': /broadcast/,
    '240.0.0.1': /^reserved$/,
    '192.0.2.1': /documentation/,
    '198.51.100.7': /documentation/,
    '203.0.113.9': /documentation/,
    '198.18.0.1': /benchmarking/,
    '192.0.0.8': /reserved/,
    '::': /^unspecified$/,
    '::1': /^loopback$/,
    '::ffff:127.0.0.1': /^IPv4-mapped loopback$/,
    '::ffff:7f00:1': /^IPv4-mapped loopback$/,
    '::ffff:10.0.0.1': /^IPv4-mapped private$/,
    '::ffff:169.254.169.254': /^IPv4-mapped link-local$/,
    '64:ff9b::7f00:1': /^NAT64 loopback$/,
    '2002:7f00:1::': /^6to4 loopback$/,
    '2002:a00:1::1': /^6to4 private$/,
    '::127.0.0.1': /IPv4-compatible/,
    'fe80::1': /^link-local$/,
    'fe80::1%eth0': /^link-local$/,
    'fc00::1': /^unique-local$/,
    'fd12:3456::1': /^unique-local$/,
    'fec0::1': /^site-local$/,
    'ff02::1': /^multicast$/,
    '2001:db8::1': /documentation/,
    '2001::1': /reserved/,
    '3fff::1': /documentation/,
    '100::1': /discard/,
    '4000::1': /outside global unicast/,
    'not-an-address': /not an IP address/,
  };
  for (const [address, kind] of Object.entries(notPublic)) t.regex(String(nonGlobalKind(address)), kind, address);
  for (
    const address of [
      '8.8.8.8',
      '1.1.1.1',
      PUBLIC,
      '11.0.0.1',
      '172.15.255.255',
      '172.32.0.1',
      '100.128.0.1',
      '169.255.0.1',
      '192.169.0.1',
      '223.255.255.255',
      '2606:4700:4700::1111',
      '2a00:1450:4001:80b::200e',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
      '2002:808:808::1',
    ]
  ) {
    t.is(nonGlobalKind(address), null, address);
  }
});

test.serial('registering: a URL whose host is or resolves to a non-public address is a 400 naming the problem, and nothing is stored', async (t) => {
  const refused: [string, RegExp][] = [
    [
      'http://127.0.0.1:9/x',
      /^body\.url: 127\.0\.0\.1 is not a public address \(loopback\); webhooks may only reach public addresses \(WEBHOOK_ALLOW_PRIVATE=true lifts this\)$/,
    ],
    ['http://[::1]/x', /::1 is not a public address \(loopback\)/],
    ['http://[::ffff:127.0.0.1]/x', /is not a public address \(IPv4-mapped loopback\)/],
    ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is not a public address \(link-local\)/],
    ['http://10.0.0.1/', /\(private\)/],
    ['http://0.0.0.0:4002/', /\(unspecified\)/],
    ['http://[fd00::1]/', /\(unique-local\)/],
    ['http://[ff02::1]/', /\(multicast\)/],
    ['http://2130706433/', /127\.0\.0\.1 is not a public address \(loopback\)/],
    ['http://0x7f.1/', /127\.0\.0\.1 is not a public address \(loopback\)/],
    ['http://localhost:4002/', /host "localhost" resolves to an address that is not public \(loopback\)/],
    [
      'https://intranet.hooks.invalid/',
      /host "intranet\.hooks\.invalid" resolves to an address that is not public \(private\)/,
    ],
    ['https://mixed.hooks.invalid/', /resolves to an address that is not public \(loopback\)/],
    ['https://v6-private.hooks.invalid/', /\(unique-local\)/],
    ['https://mapped.hooks.invalid/', /\(IPv4-mapped link-local\)/],
    ['https://nowhere.hooks.invalid/', /^body\.url: host "nowhere\.hooks\.invalid" does not resolve$/],
  ];
  for (const [url, message] of refused) {
    const response = await app.request('POST', '/api/v1/webhooks', {
      token: app.adminToken,
      body: { url, event_types: ['*'] },
    });
    t.is(response.status, 400, `${url}: ${response.text}`);
    t.is(response.body.error.code, 'invalid_request');
    t.regex(response.body.error.message, message, url);
    t.false(response.text.includes('10.20.30.40'), 'a resolved address is not revealed');
  }
  t.is(await webhookCount(), 0, 'nothing stored');
  for (const url of ['https://public.hooks.invalid/hook', `http://${PUBLIC}/hook`]) {
    const created = await app.request('POST', '/api/v1/webhooks', {
      token: app.adminToken,
      body: { url, event_types: ['device.offline'] },
    });
    t.is(created.status, 201, `${url}: ${created.text}`);
    t.is(created.body.include_client_info, false, 'client info is off by default');
    t.is((await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken })).status, 204);
  }
});

test.serial('DNS rebinding: the address is checked when delivering too, so a name that now resolves to 127.0.0.1 gets nothing', async (t) => {
  const inside = await receiver();
  try {
    answerForRebind = [PUBLIC];
    const created = await app.request('POST', '/api/v1/webhooks', {
      token: app.adminToken,
      body: { url: `http://rebind.hooks.invalid:${inside.port}/hook`, event_types: ['device.provisioned'] },
    });
    t.is(created.status, 201, 'public when registered');
    answerForRebind = ['127.0.0.1']; // the attacker's DNS changes its answer
    await queueDelivery(created.body.id);
    t.is(await worker(strict).runOnce(), 1);
    const [attempt] = await attemptsOf(created.body.id);
    t.like(attempt, { status_code: null, response_body: null });
    t.regex(attempt.error, /^host "rebind\.hooks\.invalid" resolves to an address that is not public \(loopback\)/);
    t.deepEqual(inside.received, [], 'nothing reached the loopback receiver');
    await app.request('DELETE', `/api/v1/webhooks/${created.body.id}`, { token: app.adminToken });

    // a webhook stored before the policy (or while it was lifted) is refused when delivering
    const stored = await storedWebhook(`http://127.0.0.1:${inside.port}/old`);
    await queueDelivery(stored);
    t.is(await worker(strict).runOnce(), 1);
    t.regex((await attemptsOf(stored))[0].error, /^127\.0\.0\.1 is not a public address \(loopback\)/);
    t.deepEqual(inside.received, []);
    await app.request('DELETE', `/api/v1/webhooks/${stored}`, { token: app.adminToken });
  } finally {
    await inside.close();
  }
});

test.serial('opted in (WEBHOOK_ALLOW_PRIVATE=true): resolved once per attempt, the connection goes to that address with the name kept in Host', async (t) => {
  const inside = await receiver();
  try {
    const hook = await storedWebhook(`http://receiver.hooks.invalid:${inside.port}/in?x=1`);
    await queueDelivery(hook);
    const askedBefore = resolver.asked.length;
    t.is(await worker(optedIn).runOnce(), 1);
    t.deepEqual(resolver.asked.slice(askedBefore), ['receiver.hooks.invalid'], 'one question to the resolver');
    t.is(inside.received.length, 1, 'delivered to the address the stub gave');
    t.is(inside.received[0]!.url, '/in?x=1');
    t.is(inside.received[0]!.headers.host, `receiver.hooks.invalid:${inside.port}`);
    t.like((await attemptsOf(hook))[0], { status_code: 200, error: null, response_body: 'ok' });
    await app.request('DELETE', `/api/v1/webhooks/${hook}`, { token: app.adminToken });
  } finally {
    await inside.close();
  }
});

test.serial('answers: redirects are not followed, only the status and 200 printable characters are kept; failures say "connection failed" or "timed out", nothing more', async (t) => {
  const elsewhere = await receiver();
  const nasty = `\u001b[31mroot:x:0:0\u0000\r\n\u202Esecret\u200b ${'A'.repeat(5000)}`;
  const answers = [
    (res: ServerResponse) => {
      res.writeHead(302, { Location: `http://127.0.0.1:${elsewhere.port}/internal` });
      res.end('moved');
    },
    (res: ServerResponse) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(nasty);
    },
    (_res: ServerResponse) => {
      // never answers: the attempt times out
    },
  ];
  const inside = await receiver((_req, res) => answers.shift()!(res));
  try {
    const redirected = await storedWebhook(`http://receiver.hooks.invalid:${inside.port}/a`);
    await queueDelivery(redirected);
    await worker(optedIn).runOnce();
    t.like((await attemptsOf(redirected))[0], { status_code: 302, error: 'HTTP 302', response_body: 'moved' });
    t.deepEqual(elsewhere.received, [], 'the redirect was not followed');
    await app.request('DELETE', `/api/v1/webhooks/${redirected}`, { token: app.adminToken });

    const noisy = await storedWebhook(`http://receiver.hooks.invalid:${inside.port}/b`);
    await queueDelivery(noisy);
    await worker(optedIn).runOnce();
    const [attempt] = await attemptsOf(noisy);
    t.like(attempt, { status_code: 500, error: 'HTTP 500' });
    t.true(attempt.response_body.length <= 200, `${attempt.response_body.length} characters`);
    t.false(/[\p{Cc}\p{Cf}]/u.test(attempt.response_body), 'no control or format characters');
    t.true(attempt.response_body.startsWith('[31mroot:x:0:0 secret AAAA'), attempt.response_body);
    await app.request('DELETE', `/api/v1/webhooks/${noisy}`, { token: app.adminToken });

    const slow = await storedWebhook(`http://receiver.hooks.invalid:${inside.port}/c`);
    await queueDelivery(slow);
    await worker(optedIn, 300).runOnce();
    t.like((await attemptsOf(slow))[0], { status_code: null, error: 'timed out after 300 ms', response_body: null });
    await app.request('DELETE', `/api/v1/webhooks/${slow}`, { token: app.adminToken });

    const closedPort = await freePort();
    const refused = await storedWebhook(`http://127.0.0.1:${closedPort}/d`);
    await queueDelivery(refused);
    await worker(optedIn).runOnce();
    t.like((await attemptsOf(refused))[0], { status_code: null, error: 'connection failed', response_body: null });
    await app.request('DELETE', `/api/v1/webhooks/${refused}`, { token: app.adminToken });
  } finally {
    await inside.close();
    await elsewhere.close();
  }
});

test('responseExcerpt: printable text, whitespace collapsed, at most 200 characters, whole code points', (t) => {
  const encode = (s: string) => new TextEncoder().encode(s);
  t.is(responseExcerpt(encode('  ok \n')), 'ok');
  t.is(responseExcerpt(encode('a\u0000b\u0007c\u001b[0m\td\u2028e')), 'a b c [0m d e');
  t.is(responseExcerpt(encode('😀'.repeat(300))), '😀'.repeat(200));
  t.is(responseExcerpt(new Uint8Array([0x68, 0x69, 0xff, 0xfe, 0x21])), 'hi !');
});

test('resolveWebhookTarget: an IP literal is not looked up; a name is asked once and the first address is used', async (t) => {
  const before = resolver.asked.length;
  t.deepEqual(await resolveWebhookTarget('http://[2606:4700:4700::1111]/', strict), {
    address: '2606:4700:4700::1111',
    family: 6,
  });
  t.is(resolver.asked.length, before, 'no lookup for a literal');
  t.deepEqual(await resolveWebhookTarget('https://public.hooks.invalid/', strict), { address: PUBLIC, family: 4 });
  t.deepEqual(await resolveWebhookTarget('http://localhost/', optedIn), { address: '127.0.0.1', family: 4 });
});
