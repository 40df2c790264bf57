// A devicetrail app on its own database, served on 127.0.0.1, with request helpers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'slonik';
import { z } from 'zod';
import { createApp } from '../../app/http/create-app.ts';
import { type AppDeps, createDeps } from '../../app/http/deps.ts';
import type { WebhookAddressPolicy } from '../../infra/webhooks/address-policy.ts';
import type { AuthThrottleLimits } from '../../app/http/middleware/auth-throttle.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

/** What a helper request returns. */
// deno-lint-ignore no-explicit-any -- tests read response bodies as loose JSON
export type TestResponse = { status: number; headers: Headers; body: any; text: string };

/** Options for one request. */
export type RequestOptions = { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> };

export type TestApp = Awaited<ReturnType<typeof startTestApp>>;

/**
 * Starts the app on a fresh database with an admin token ready. `webhookPolicy`: which webhook
 * URLs it registers (default as in production: public addresses only, the system resolver).
 */
export async function startTestApp(
  options: {
    clock?: () => Date;
    webhookPolicy?: Partial<WebhookAddressPolicy>;
    /** The pepper credential hashes are keyed with (CREDENTIAL_PEPPER); default: one of this process. */
    credentialPepper?: string;
    /** Failed-authentication throttle (AUTH_FAILURE_LIMIT_*); default: none. */
    authThrottle?: AuthThrottleLimits;
  } = {},
) {
  const db: TestDatabase = await createTestDatabase();
  const errors: unknown[] = [];
  const deps: AppDeps = createDeps(db.pool, {
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.webhookPolicy ? { webhookPolicy: options.webhookPolicy } : {}),
    ...(options.credentialPepper ? { credentialPepper: options.credentialPepper } : {}),
    ...(options.authThrottle ? { authThrottle: options.authThrottle } : {}),
    logError: (_m, e) => {
      errors.push(e);
    },
  });
  const server: Server = createServer(createApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const adminToken = (await deps.adminTokens.create('test')).token;

  async function request(method: string, path: string, opts: RequestOptions = {}): Promise<TestResponse> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token !== undefined) headers['Authorization'] = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['Content-Type'] ??= 'application/json';
    }
    const response = await fetch(`${baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  }

  async function createProvisioningKey(
    body: Record<string, unknown> = { fleet_id: 'fleet-1' },
  ): Promise<{ id: string; key: string }> {
    const response = await request('POST', '/api/v1/provisioning-keys', { token: adminToken, body });
    if (response.status !== 201) throw new Error(`provisioning key: ${response.status} ${response.text}`);
    return response.body;
  }

  /** Registers a device and returns its uuid and key. */
  async function registerDevice(
    provisioningKey: string,
    overrides: Record<string, unknown> = {},
  ): Promise<{ uuid: string; key: string; response: TestResponse }> {
    const uuid = (overrides['uuid'] as string | undefined) ?? crypto.randomUUID();
    const key = (overrides['deviceApiKey'] as string | undefined) ?? `device-key-${crypto.randomUUID()}`;
    const response = await request('POST', '/api/v1/device/register', {
      token: provisioningKey,
      body: {
        uuid,
        deviceName: 'test-device',
        deviceType: 'raspberry-pi-4',
        deviceApiKey: key,
        macAddress: 'b8:27:eb:12:34:56',
        ...overrides,
      },
    });
    return { uuid, key, response };
  }

  async function eventCount(): Promise<number> {
    return db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`);
  }

  return {
    db,
    deps,
    baseUrl,
    adminToken,
    errors,
    request,
    createProvisioningKey,
    registerDevice,
    eventCount,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.drop();
    },
  };
}
