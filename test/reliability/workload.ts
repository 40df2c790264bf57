// Ingest load for the crash and outage drivers: many devices reporting their state, plus
// registrations, device-sent events, target updates and active toggles. Every request
// carries its own X-Request-Id (stored as metadata.request_id), and every 2xx answer is
// written to a ledger with what the answer promised was stored; store-check.ts later
// holds the database to those promises.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Agent } from 'node:http';
import { type HttpRequest, type HttpResponse, keepAliveAgent, send } from './http-client.ts';

/** An acknowledged (2xx) request and what its answer says was stored. */
export type Ack = {
  requestId: string;
  route: string;
  aggregateId: string;
  /** The exact number of events the answer says it wrote, when it says. */
  exactEvents?: number;
  /** At least this many events carry the request id. */
  minEvents: number;
  /** Events the answer named by id. */
  eventIds: string[];
  /** The answer acknowledged a state report carrying metrics: one device_metrics sample (issue #15). */
  metricsSample?: true;
  /** The stream version the answer reported (its last event's aggregate_version), when it did. */
  version?: number;
};

/** A device the workload drives. */
export type LoadDevice = { uuid: string; key: string; registered: boolean };

/** Counters a driver prints. */
export type LoadStats = {
  sent: number;
  acked: number;
  statuses: Record<string, number>;
  networkErrors: number;
  latenciesMs: number[];
};

/** What a workload needs: where the service is and the credentials to use. */
export type WorkloadOptions = {
  baseUrl: () => string;
  adminToken: string;
  provisioningKey: string;
  /** Devices registered up front; more register while the load runs, up to `maxDevices`. */
  initialDevices: number;
  maxDevices: number;
  connections: number;
  timeoutMs?: number;
  /** Called with every answer (e.g. to time the ones during an outage). */
  onResponse?: (request: HttpRequest & { at: number }, response: HttpResponse | Error) => void;
};

const apps = ['1000', '1001', '1002'];

/**
 * A state report that always carries metrics (a sample in device_metrics, issue #15); two in
 * three change state (its local_ip), sometimes the apps too, and the third changes only metrics
 * (no event, the sample written with its contact).
 */
function reportBody(uuid: string, n: number): object {
  const body: Record<string, unknown> = {
    ...(n % 3 === 1 ? {} : { local_ip: `10.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}` }),
    cpu_usage: Math.round(Math.random() * 1e6) / 1e4,
    memory_usage: Math.round(Math.random() * 1e4) / 1e2,
    uptime: n,
  };
  if (n % 5 === 0) {
    const appId = apps[n % apps.length]!;
    body['apps'] = {
      [appId]: {
        services: {
          main: {
            status: n % 10 === 0 ? 'Running' : 'Exited',
            containerId: `c-${n}`,
            image: `registry.local/app:${n % 3}`,
            exitCode: n % 10 === 0 ? 0 : 1,
          },
        },
      },
    };
  }
  return { [uuid]: body };
}

/** The load: call `run()` per phase; `stop()` ends the loops; `acks` is the ledger. */
export function createWorkload(options: WorkloadOptions) {
  const devices: LoadDevice[] = [];
  const acks: Ack[] = [];
  const stats: LoadStats = { sent: 0, acked: 0, statuses: {}, networkErrors: 0, latenciesMs: [] };
  let agent: Agent = keepAliveAgent(options.connections);
  let seq = 0;
  const prefix = randomBytes(3).toString('hex');

  const nextId = () => `rel-${prefix}-${(seq += 1)}`;
  const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;

  async function call(
    request: HttpRequest,
    route: string,
    aggregateId: string,
    onOk: (response: HttpResponse, ack: Ack) => Ack | null,
  ): Promise<HttpResponse | null> {
    const requestId = nextId();
    const at = Date.now();
    stats.sent += 1;
    let response: HttpResponse;
    try {
      response = await send(options.baseUrl(), {
        ...request,
        headers: { ...request.headers, 'X-Request-Id': requestId },
      }, { agent, timeoutMs: options.timeoutMs ?? 30_000 });
    } catch (error) {
      stats.networkErrors += 1;
      options.onResponse?.({ ...request, at }, error as Error);
      return null;
    }
    options.onResponse?.({ ...request, at }, response);
    stats.statuses[response.status] = (stats.statuses[response.status] ?? 0) + 1;
    stats.latenciesMs.push(response.ms);
    if (response.status >= 200 && response.status < 300) {
      // the id the service gave the request (its X-Request-Id with a unique suffix) is the one stored
      const stored = String(response.headers['x-request-id'] ?? requestId);
      const ack = onOk(response, { requestId: stored, route, aggregateId, minEvents: 0, eventIds: [] });
      if (ack !== null) {
        acks.push(ack);
        stats.acked += 1;
      }
    }
    return response;
  }

  async function register(device: LoadDevice): Promise<void> {
    await call(
      {
        method: 'POST',
        path: '/api/v1/device/register',
        headers: { Authorization: `Bearer ${options.provisioningKey}` },
        body: {
          uuid: device.uuid,
          deviceName: `rel-${device.uuid.slice(0, 8)}`,
          deviceType: 'raspberry-pi-4',
          deviceApiKey: device.key,
        },
      },
      'POST /api/v1/device/register',
      device.uuid,
      (response, ack) => {
        device.registered = true;
        // 200: registered earlier with this key (an earlier answer was lost): nothing written now
        return response.status === 201 ? { ...ack, minEvents: 1 } : { ...ack, exactEvents: 0 };
      },
    );
  }

  function newDevice(): LoadDevice {
    const device = { uuid: randomUUID(), key: `rel-key-${randomBytes(12).toString('hex')}`, registered: false };
    devices.push(device);
    return device;
  }

  async function step(n: number): Promise<void> {
    const registered = devices.filter((d) => d.registered);
    const roll = Math.random();
    const unregistered = devices.find((d) => !d.registered);
    if (unregistered !== undefined && roll < 0.5) return register(unregistered);
    if (registered.length === 0 || (roll < 0.04 && devices.length < options.maxDevices)) return register(newDevice());
    const device = pick(registered);
    if (roll < 0.82) {
      await call(
        {
          method: 'PATCH',
          path: '/api/v1/device/state',
          headers: { Authorization: `Bearer ${device.key}` },
          body: reportBody(device.uuid, n),
        },
        'PATCH /api/v1/device/state',
        device.uuid,
        (response, ack) => {
          const written = Number(response.json?.events_written);
          return {
            ...ack,
            exactEvents: written,
            minEvents: written,
            metricsSample: true,
            ...(written > 0 ? { version: response.json?.devices?.[device.uuid]?.version } : {}),
          };
        },
      );
    } else if (roll < 0.9) {
      const events = [
        { type: 'volume.created', data: { app_id: 1000, name: `vol-${n}` } },
        {
          type: 'container.crashed',
          observed_at: new Date().toISOString(),
          data: {
            app_id: '1000',
            service_name: 'worker',
            container_id: `w-${n}`,
            exit_code: 137,
            restart_count: n % 7,
          },
        },
      ].slice(0, 1 + (n % 2));
      await call(
        {
          method: 'POST',
          path: '/api/v1/device/events',
          headers: { Authorization: `Bearer ${device.key}` },
          body: { events },
        },
        'POST /api/v1/device/events',
        device.uuid,
        (response, ack) => ({
          ...ack,
          exactEvents: Number(response.json?.events_written),
          minEvents: events.length,
          eventIds: response.json?.event_ids ?? [],
          version: response.json?.version,
        }),
      );
    } else if (roll < 0.96) {
      const appId = pick(apps);
      await call(
        {
          method: 'POST',
          path: `/api/v1/devices/${device.uuid}/target-state`,
          headers: { Authorization: `Bearer ${options.adminToken}` },
          body: {
            apps: {
              [appId]: {
                appName: `app-${appId}`,
                services: [{ serviceName: 'main', image: `registry.local/app:${n % 3}` }],
              },
            },
            config: { RELEASE: String(n) },
          },
        },
        'POST /api/v1/devices/:uuid/target-state',
        device.uuid,
        (response, ack) => ({
          ...ack,
          minEvents: 1,
          eventIds: response.json?.event_id ? [response.json.event_id] : [],
        }),
      );
    } else {
      await call(
        {
          method: 'PATCH',
          path: `/api/v1/devices/${device.uuid}/active`,
          headers: { Authorization: `Bearer ${options.adminToken}` },
          // mostly enabling, so few devices stay disabled (their reports are refused with 403)
          body: { is_active: Math.random() < 0.7, reason: 'reliability load' },
        },
        'PATCH /api/v1/devices/:uuid/active',
        device.uuid,
        (response, ack) => ({
          ...ack,
          minEvents: response.json?.changed ? 1 : 0,
          eventIds: response.json?.event_id ? [response.json.event_id] : [],
        }),
      );
    }
  }

  let running = false;
  let loops: Promise<void>[] = [];

  return {
    devices,
    acks,
    stats,
    /** Registers the initial devices (in parallel batches); throws when one fails. */
    async provision(): Promise<void> {
      const batch = Array.from({ length: options.initialDevices }, () => newDevice());
      for (let i = 0; i < batch.length; i += options.connections) {
        await Promise.all(batch.slice(i, i + options.connections).map((d) => register(d)));
      }
      const failed = batch.filter((d) => !d.registered);
      if (failed.length > 0) {
        throw new Error(
          `${failed.length} of ${batch.length} devices failed to register (statuses ${JSON.stringify(stats.statuses)})`,
        );
      }
    },
    /** Starts `connections` loops sending requests back to back. */
    start(): void {
      running = true;
      loops = Array.from({ length: options.connections }, async () => {
        while (running) {
          const before = stats.networkErrors;
          await step(seq);
          // the service is down: do not spin
          if (stats.networkErrors > before) await new Promise((r) => setTimeout(r, 50));
        }
      });
    },
    /** Stops the loops and waits for requests in flight. */
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
      loops = [];
    },
    /** Drops pooled keep-alive connections (after the service restarted). */
    resetConnections(): void {
      agent.destroy();
      agent = keepAliveAgent(options.connections);
    },
  };
}
