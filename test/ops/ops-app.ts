// An app with operational options (logger, metrics, tokens, shutdown registry) on its own
// database, served on 127.0.0.1, for the test/ops suites.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type AppOptions, createApp } from '../../app/http/create-app.ts';
import { type AppDeps, createDeps } from '../../app/http/deps.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

/** What a request returns. */
// deno-lint-ignore no-explicit-any -- tests read response bodies as loose JSON
export type OpsResponse = { status: number; headers: Headers; text: string; body: any };

/** Starts the app with `options` on a fresh database; `deps` may be adjusted first. */
export async function startOpsApp(
  options: AppOptions = {},
  adjust: (deps: AppDeps, db: TestDatabase) => AppDeps | Promise<AppDeps> = (d) => d,
) {
  const db: TestDatabase = await createTestDatabase();
  // webhooks registered here point at 127.0.0.1 and are never delivered (no worker runs)
  const deps = await adjust(createDeps(db.pool, { logError: () => {}, webhookPolicy: { allowPrivate: true } }), db);
  const server: Server = createServer(createApp(deps, options).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const adminToken = (await deps.adminTokens.create('ops-test')).token;

  async function request(
    method: string,
    path: string,
    opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<OpsResponse> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined) headers['Authorization'] = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['Content-Type'] ??= 'application/json';
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, headers: response.headers, text, body };
  }

  /** A provisioning key and a registered device with its key. */
  async function registerDevice(): Promise<{ uuid: string; key: string; provisioningKey: string }> {
    const pk = await request('POST', '/api/v1/provisioning-keys', { token: adminToken, body: { fleet_id: 'ops' } });
    if (pk.status !== 201) throw new Error(`provisioning key: ${pk.status} ${pk.text}`);
    const uuid = crypto.randomUUID();
    const key = `device-key-${crypto.randomUUID()}`;
    const r = await request('POST', '/api/v1/device/register', {
      token: pk.body.key,
      body: { uuid, deviceName: 'ops-device', deviceType: 'raspberry-pi-4', deviceApiKey: key },
    });
    if (r.status !== 201) throw new Error(`register: ${r.status} ${r.text}`);
    return { uuid, key, provisioningKey: pk.body.key as string };
  }

  return {
    db,
    deps,
    baseUrl,
    adminToken,
    request,
    registerDevice,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.drop();
    },
  };
}

/** The value of one sample in a Prometheus text exposition (0 when absent). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const have = Object.fromEntries(
      [...(match[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[4]);
  }
  return 0;
}
