// The console suites' app: the real app on its own database, served on 127.0.0.1 (plain
// HTTP, or with every socket marked encrypted, as Node's TLS sockets are, to see what the
// app does over HTTPS), with a movable clock and cookie-aware request helpers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { sql } from 'slonik';
import { z } from 'zod';
import { createApp } from '../../app/http/create-app.ts';
import { type AppDeps, type ConsoleSettings, createDeps } from '../../app/http/deps.ts';
import type { LiveStreamLimits } from '../../app/http/live-streams.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

/** An answer: status, headers, text and parsed JSON (when it is JSON). */
// deno-lint-ignore no-explicit-any -- tests read response bodies as loose JSON
export type ConsoleResponse = { status: number; headers: Headers; text: string; json: any };

/** Options of one request. */
export type ConsoleRequest = {
  method?: string;
  token?: string;
  cookie?: string;
  csrf?: string;
  body?: unknown;
  headers?: Record<string, string>;
};

/** Starts the app; `https` marks every socket encrypted (what Koa reads to call a request secure). */
export async function startConsoleApp(
  options: {
    https?: boolean;
    console?: Partial<ConsoleSettings>;
    liveStreams?: Partial<LiveStreamLimits>;
    clock?: () => Date;
  } = {},
) {
  const db: TestDatabase = await createTestDatabase();
  const errors: unknown[] = [];
  const deps: AppDeps = createDeps(db.pool, {
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.console === undefined ? {} : { console: options.console }),
    ...(options.liveStreams === undefined ? {} : { liveStreams: options.liveStreams }),
    logError: (_m, e) => {
      errors.push(e);
    },
  });
  const server: Server = createServer(createApp(deps).callback());
  if (options.https === true) {
    server.on('connection', (socket: Socket) => Object.assign(socket, { encrypted: true }));
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = await deps.adminTokens.create('console-admin');

  async function request(path: string, req: ConsoleRequest = {}): Promise<ConsoleResponse> {
    const headers: Record<string, string> = { ...req.headers };
    if (req.token !== undefined) headers['Authorization'] = `Bearer ${req.token}`;
    if (req.cookie !== undefined) headers['Cookie'] = req.cookie;
    if (req.csrf !== undefined) headers['X-CSRF-Token'] = req.csrf;
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(`${baseUrl}${path}`, {
      method: req.method ?? 'GET',
      headers,
      redirect: 'manual',
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  /** Signs in with `token`; returns the Set-Cookie line, the `name=value` cookie, the secret and the page's CSRF token. */
  async function signIn(token = admin.token) {
    const response = await request('/console/session', { method: 'POST', token });
    if (response.status !== 201) throw new Error(`sign in: ${response.status} ${response.text}`);
    const setCookie = response.headers.get('set-cookie') ?? '';
    const cookie = setCookie.split(';')[0]!;
    const secret = cookie.slice(cookie.indexOf('=') + 1);
    const page = await request('/provisioning-keys', { cookie });
    const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page.text)?.[1] ?? '';
    return { response, setCookie, cookie, secret, csrf };
  }

  /** Registers a device through the API (a provisioning key, then the device). */
  async function registerDevice(overrides: Record<string, unknown> = {}) {
    const key = await request('/api/v1/provisioning-keys', {
      method: 'POST',
      token: admin.token,
      body: { fleet_id: (overrides['fleet'] as string | undefined) ?? 'fleet-1' },
    });
    const uuid = crypto.randomUUID();
    const deviceKey = `console-device-${crypto.randomUUID()}`;
    const registered = await request('/api/v1/device/register', {
      method: 'POST',
      token: key.json.key,
      body: {
        uuid,
        deviceName: (overrides['name'] as string | undefined) ?? 'console-device',
        deviceType: 'raspberry-pi-4',
        deviceApiKey: deviceKey,
      },
    });
    if (registered.status !== 201) throw new Error(`register: ${registered.status} ${registered.text}`);
    return { uuid, deviceKey };
  }

  async function eventCount(): Promise<number> {
    return db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`);
  }

  return {
    db,
    deps,
    baseUrl,
    admin,
    errors,
    request,
    signIn,
    registerDevice,
    eventCount,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await db.drop();
    },
  };
}
