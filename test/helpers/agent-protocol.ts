// Requests shaped as the device agent of dsamborschi/zemfyre-sensor builds them (agent/ at
// commit 6f923aae, read from its source; nothing here is its code): provisioning
// (src/provisioning/device-manager.ts), the poll and the state report (src/sync-state.ts), the
// services it reports (src/compose/container-manager.ts, from Docker's container list and
// inspect) and a log upload (src/logging/cloud-backend.ts). Tests, the fixture recorder and
// nothing else use them; no request leaves the machine.
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { Buffer } from 'node:buffer';

/** What the agent keeps about itself after provisioning. */
export type AgentIdentity = { uuid: string; deviceApiKey: string; deviceName: string };

/** A new agent identity: a v4 uuid and a 64-hex-digit device key, as the agent generates them. */
export function newAgentIdentity(uuid: string = crypto.randomUUID()): AgentIdentity {
  return { uuid, deviceApiKey: randomBytes(32).toString('hex'), deviceName: `device-${uuid.slice(0, 8)}` };
}

/** One HTTP request as the agent sends it. */
export type AgentRequest = { method: string; path: string; headers: Record<string, string>; body?: Buffer | string };

/**
 * POST /api/v1/device/register: Bearer provisioning key, JSON. `applicationId` is left out
 * when APPLICATION_ID is unset (JSON.stringify drops undefined); `agentVersion` is what the
 * newest agent adds (AGENT_VERSION, default 1.0.0); older agents send neither.
 */
export function registerRequest(
  identity: AgentIdentity,
  provisioningKey: string,
  options: { applicationId?: number; agentVersion?: string | null; deviceType?: string } = {},
): AgentRequest {
  const body = {
    uuid: identity.uuid,
    deviceName: identity.deviceName,
    deviceType: options.deviceType ?? 'standalone',
    deviceApiKey: identity.deviceApiKey,
    applicationId: options.applicationId,
    macAddress: '02:42:ac:11:00:02',
    osVersion: 'Debian GNU/Linux 12 (bookworm)',
    agentVersion: options.agentVersion === null ? undefined : options.agentVersion ?? '1.0.0',
  };
  return {
    method: 'POST',
    path: '/api/v1/device/register',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${provisioningKey}` },
    body: JSON.stringify(body),
  };
}

/** POST /api/v1/device/:uuid/key-exchange: Bearer = its device key, body `{uuid, deviceApiKey}`. */
export function keyExchangeRequest(identity: AgentIdentity): AgentRequest {
  return {
    method: 'POST',
    path: `/api/v1/device/${identity.uuid}/key-exchange`,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${identity.deviceApiKey}` },
    body: JSON.stringify({ uuid: identity.uuid, deviceApiKey: identity.deviceApiKey }),
  };
}

/** GET /api/v1/device/:uuid/state with X-Device-API-Key and, after a 200, the ETag it got. */
export function pollRequest(identity: AgentIdentity, etag?: string): AgentRequest {
  return {
    method: 'GET',
    path: `/api/v1/device/${identity.uuid}/state`,
    headers: {
      'Content-Type': 'application/json',
      'X-Device-API-Key': identity.deviceApiKey,
      ...(etag === undefined ? {} : { 'if-none-match': etag }),
    },
  };
}

/** A container as the agent's Docker stand-in would list it. */
export type AgentContainer = {
  appId: number;
  appName: string;
  serviceId: number;
  serviceName: string;
  image: string;
  containerId: string;
  state?: string;
  environment?: Record<string, string>;
  ports?: string[];
};

/**
 * A service as the agent reports it (ContainerManager.getCurrentState): identity, `imageName`,
 * the full container id, the Docker state in lower case, its mapped `state`, and the container
 * config it inspected, environment included.
 */
export function reportedService(c: AgentContainer) {
  const status = (c.state ?? 'running').toLowerCase();
  return {
    serviceId: c.serviceId,
    serviceName: c.serviceName,
    imageName: c.image,
    appId: c.appId,
    appName: c.appName,
    containerId: c.containerId,
    status,
    ...(status === 'running' ? { state: 'running' } : status === 'exited' ? { state: 'stopped' } : {}),
    config: {
      image: c.image,
      ports: c.ports ?? [],
      volumes: [],
      networks: [],
      environment: c.environment ?? {},
      restart: 'unless-stopped',
      labels: {
        'iotistic.app-id': String(c.appId),
        'iotistic.service-id': String(c.serviceId),
        'iotistic.app-name': c.appName,
        'iotistic.service-name': c.serviceName,
      },
      networkMode: 'bridge',
    },
  };
}

/** `apps` as the agent reports them: keyed by app id, services as a list. */
export function reportedApps(containers: readonly AgentContainer[]) {
  const apps: Record<string, { appId: number; appName: string; services: ReturnType<typeof reportedService>[] }> = {};
  for (const c of containers) {
    apps[c.appId] ??= { appId: c.appId, appName: c.appName, services: [] };
    apps[c.appId]!.services.push(reportedService(c));
  }
  return apps;
}

/**
 * One device's state report as the agent builds it (ApiBinder.reportCurrentState): apps,
 * config, is_online and the target version it last fetched; the first report adds os_version
 * and agent_version; a metrics report adds the metrics, top processes, network interfaces and
 * local_ip.
 */
export function stateReport(
  identity: AgentIdentity,
  containers: readonly AgentContainer[],
  options: { version?: number; first?: boolean; metrics?: boolean; config?: Record<string, unknown> } = {},
) {
  const entry: Record<string, unknown> = {
    apps: reportedApps(containers),
    config: options.config ?? {},
    is_online: true,
    version: options.version ?? 0,
  };
  if (options.first === true) {
    entry['os_version'] = 'Debian GNU/Linux 12 (bookworm)';
    entry['agent_version'] = '1.0.0';
  }
  if (options.metrics === true) {
    Object.assign(entry, {
      cpu_usage: 12.5,
      memory_usage: 812_000_000,
      memory_total: 4_096_000_000,
      storage_usage: 9_800_000_000,
      storage_total: 31_000_000_000,
      temperature: 51.2,
      uptime: 86_400,
      top_processes: [{ pid: 812, name: 'node', cpu: 3.2, mem: 4.1, command: 'node dist/app.js' }],
      network_interfaces: [{
        name: 'eth0',
        ip4: '192.168.1.50',
        ip6: null,
        mac: '02:42:ac:11:00:02',
        type: 'wired',
        default: true,
        virtual: false,
        operstate: 'up',
      }],
      local_ip: '192.168.1.50',
    });
  }
  return { [identity.uuid]: entry };
}

/** PATCH /api/v1/device/state: gzip-encoded JSON with X-Device-API-Key (the HTTP path, MQTT off). */
export function reportRequest(identity: AgentIdentity, report: object): AgentRequest {
  return {
    method: 'PATCH',
    path: '/api/v1/device/state',
    headers: {
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
      'X-Device-API-Key': identity.deviceApiKey,
    },
    body: gzipSync(JSON.stringify(report)),
  };
}

/** POST /api/v1/device/:uuid/logs: gzip NDJSON lines as the cloud log backend sends them. */
export function logUploadRequest(identity: AgentIdentity, lines: readonly object[]): AgentRequest {
  return {
    method: 'POST',
    path: `/api/v1/device/${identity.uuid}/logs`,
    headers: {
      'Content-Type': 'application/x-ndjson',
      'X-Device-API-Key': identity.deviceApiKey,
      'Content-Encoding': 'gzip',
    },
    body: gzipSync(lines.map((line) => JSON.stringify(line)).join('\n') + '\n'),
  };
}

/** The agent's two apps and four running containers (the trial's Docker stand-in holds the same). */
export function twoAppsFourContainers(webImage = 'registry.example/web:3.1.0'): AgentContainer[] {
  const id = (n: number) => n.toString(16).padStart(64, 'c');
  return [
    {
      appId: 1001,
      appName: 'web',
      serviceId: 1,
      serviceName: 'nginx',
      image: webImage,
      containerId: id(1),
      environment: { NGINX_PORT: '80', API_TOKEN: 's3cr3t-token-value' },
      ports: ['8080:80'],
    },
    {
      appId: 1001,
      appName: 'web',
      serviceId: 2,
      serviceName: 'api',
      image: 'registry.example/api:2.4.0',
      containerId: id(2),
      environment: { DATABASE_PASSWORD: 'hunter2-database-password' },
    },
    {
      appId: 1002,
      appName: 'monitoring',
      serviceId: 3,
      serviceName: 'mosquitto',
      image: 'eclipse-mosquitto:2.0.18',
      containerId: id(3),
    },
    {
      appId: 1002,
      appName: 'monitoring',
      serviceId: 4,
      serviceName: 'node-red',
      image: 'nodered/node-red:3.1.3',
      containerId: id(4),
    },
  ];
}

/**
 * A target in the shape the agent consumes: apps keyed by id, services listed with `imageName`
 * and a container `config` (no environment: test/http/secrets.test.ts sets targets with secrets).
 */
export function agentTarget(containers: readonly AgentContainer[]) {
  const apps: Record<string, { appId: number; appName: string; services: object[] }> = {};
  for (const c of containers) {
    apps[c.appId] ??= { appId: c.appId, appName: c.appName, services: [] };
    apps[c.appId]!.services.push({
      serviceId: c.serviceId,
      serviceName: c.serviceName,
      imageName: c.image,
      appId: c.appId,
      appName: c.appName,
      config: { image: c.image, ports: c.ports ?? [] },
    });
  }
  return { apps, config: {} };
}
