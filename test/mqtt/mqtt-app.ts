// The app on its own database with the MQTT transport: embedded (aedes on a free loopback
// port) or external (a test Mosquitto), with MQTT.js device helpers.
import type { Buffer } from 'node:buffer';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { Registry } from 'prom-client';
import { sql } from 'slonik';
import { z } from 'zod';
import { type MqttTransport, startMqttTransport } from '../../app/mqtt/transport.ts';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import { startTestApp } from '../helpers/app.ts';
import type { TestMosquitto } from './mosquitto.ts';
import type { RateLimit } from '../../app/http/middleware/rate-limit.ts';

/** A registered device with its MQTT credential. */
export type MqttDevice = { uuid: string; key: string; username: string; password: string; broker: string };

/** Options: the external broker (default: embedded) and the report rate limit (default: none). */
export type MqttAppOptions = { mosquitto?: TestMosquitto; rateLimit?: RateLimit | null; clientId?: string };

/** Starts the app and the transport. */
export async function startMqttApp(options: MqttAppOptions = {}) {
  const app = await startTestApp();
  const registry = new Registry();
  const logs: string[] = [];
  const settings = (clientId: string) => ({
    MQTT_PORT: 0,
    MQTT_HOST: '127.0.0.1',
    MQTT_URL: options.mosquitto?.url,
    MQTT_PUBLIC_URL: undefined,
    MQTT_ADMIN_USERNAME: options.mosquitto?.admin.username,
    MQTT_ADMIN_PASSWORD: options.mosquitto?.admin.password,
    MQTT_CLIENT_ID: clientId,
    MQTT_SUBSCRIBERS: 2,
    HOST: '127.0.0.1',
    PORT: 0,
    BODY_LIMIT_KB: 64,
    LISTENER_POLL_MS: 200,
    REPORT_RATE_LIMIT: options.rateLimit ?? null,
  });
  const clientId = options.clientId ?? `dt-test-${crypto.randomUUID().slice(0, 8)}`;
  const start = () =>
    startMqttTransport(settings(clientId), {
      pool: app.db.pool,
      store: app.deps.store,
      clock: () => new Date(),
      registry,
      secrets: app.deps.secrets,
      hasher: app.deps.credentials,
      log: (level, message, error) => {
        logs.push(`${level}: ${message}${error === undefined ? '' : ` ${String(error)}`}`);
      },
    });
  let transport: MqttTransport = await start();
  const clients: MqttClient[] = [];
  const provisioning = await app.createProvisioningKey({ fleet_id: 'fleet-mqtt', max_devices: 1000 });

  // the API as app/main.ts wires it: its registration reply and key exchange issue MQTT
  // credentials through the transport (the test app above has none: MQTT off)
  const apiDeps = createDeps(app.db.pool, {
    logError: (message, error) => logs.push(`error: ${message} ${error}`),
    secrets: app.deps.secrets, // one key per service: the same markers whichever way a value arrives
  });
  apiDeps.mqtt = {
    issueCredentials: (uuid, host) => transport.issueCredentials(uuid, host),
    mode: options.mosquitto === undefined ? 'embedded' : 'external',
    isConnected: (uuid) => transport.isConnected(uuid),
  };
  const api: Server = createServer(createApp(apiDeps).callback());
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;

  /** A request to the MQTT-wired API. */
  async function call(method: string, path: string, token: string, body: unknown) {
    const response = await fetch(`${apiUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    // deno-lint-ignore no-explicit-any -- tests read answers as loose JSON
    return { status: response.status, body: (await response.json()) as any };
  }

  /** Registers a device as the device agent does; its MQTT credential comes from the reply. */
  async function newDevice(): Promise<MqttDevice> {
    const uuid = crypto.randomUUID();
    const key = `device-key-${crypto.randomUUID()}`;
    const registered = await call('POST', '/api/v1/device/register', provisioning.key, {
      uuid,
      deviceName: 'mqtt-device',
      deviceType: 'raspberry-pi-4',
      deviceApiKey: key,
    });
    if (registered.status !== 201) throw new Error(`register: ${registered.status} ${JSON.stringify(registered.body)}`);
    const mqtt = registered.body.mqtt as { username: string; password: string; broker: string };
    if (mqtt.password === null) throw new Error(`no MQTT credential in the reply: ${logs.join('\n')}`);
    return { uuid, key, ...mqtt };
  }

  /** Connects as `device` (client id `device_<uuid>` unless overridden); rejects when refused. */
  async function connectDevice(device: MqttDevice, overrides: IClientOptions = {}): Promise<MqttClient> {
    const client = await mqtt.connectAsync(device.broker, {
      clientId: device.username,
      username: device.username,
      password: device.password,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...overrides,
    }, false);
    clients.push(client);
    return client;
  }

  /** Events of one device, oldest first. */
  async function eventsOf(uuid: string) {
    return app.db.pool.any(sql.type(z.object({
      event_type: z.string(),
      data: z.record(z.string(), z.unknown()),
      metadata: z.record(z.string(), z.unknown()),
      source: z.string(),
    }))`SELECT event_type, data, metadata, source FROM events
         WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} ORDER BY aggregate_version`);
  }

  return {
    app,
    registry,
    logs,
    get transport() {
      return transport;
    },
    newDevice,
    connectDevice,
    call,
    apiUrl,
    provisioningKey: provisioning.key,
    eventsOf,
    /** Stops the transport and starts it again (same client id: an external broker's sessions resume). */
    async restart() {
      await transport.stop();
      transport = await start();
    },
    async close() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      await transport.stop().catch(() => undefined);
      await new Promise<void>((resolve) => api.close(() => resolve()));
      await app.close();
    },
  };
}

/** A state report body as the device agent sends it: keyed by its uuid. */
export function agentReport(uuid: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    [uuid]: {
      apps: {
        '1001': {
          appId: 1001,
          appName: 'sensors',
          services: [{
            serviceId: 1,
            serviceName: 'main',
            imageName: 'registry.example/sensors:1.0.0',
            status: 'running',
          }],
        },
      },
      config: {},
      is_online: true,
      version: 0,
      os_version: 'Debian 12',
      ...fields,
    },
  });
}

/** The next message on `topic` (or matching it), within `ms`. */
export function nextMessage(
  client: MqttClient,
  topic: string,
  ms = 5000,
): Promise<{ topic: string; payload: string; retain: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic} within ${ms} ms`));
    }, ms);
    const onMessage = (t: string, payload: Buffer, packet: { retain?: boolean }) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic: t, payload: payload.toString(), retain: packet.retain === true });
    };
    client.on('message', onMessage);
  });
}

/** Waits until `check` holds, polling every 50 ms, for at most `ms`. */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
