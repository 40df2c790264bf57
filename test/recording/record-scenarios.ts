// The fixture scenarios: scripts that drive the public API as an admin and a device would,
// on a scripted clock. `npm run fixtures:record` runs each on a fresh service and writes
// fixtures/<name>.ndjson (exported events) and fixtures/<name>.expected.json (what the
// live service held after every write). Add a scenario here; the fixture suite needs no code.
import type { Exchange, RecordingSession } from './record-session.ts';
import {
  type AgentContainer,
  type AgentIdentity,
  type AgentRequest,
  agentTarget,
  keyExchangeRequest,
  pollRequest,
  registerRequest,
  reportRequest,
  stateReport,
  twoAppsFourContainers,
} from '../helpers/agent-protocol.ts';

/** A scenario: one device's story. */
export type Scenario = {
  name: string;
  description: string;
  device: string;
  /** The scripted clock's first instant. */
  start: string;
  run: (api: ScenarioApi) => Promise<void>;
};

/** The calls scenarios make; each fails loudly on an unexpected status. */
export type ScenarioApi = ReturnType<typeof scenarioApi>;

/** Wraps a recording session in the device's and the admin's calls. */
export function scenarioApi(s: RecordingSession, uuid: string) {
  const deviceKey = `fixture-device-key-${uuid.slice(0, 8)}`;
  let provisioningKey = '';
  const expect = async (
    call: Promise<Exchange>,
    what: string,
    status: number | number[] = [200, 201],
  ): Promise<Exchange> => {
    const result = await call;
    const wanted = Array.isArray(status) ? status : [status];
    if (!wanted.includes(result.status)) {
      throw new Error(
        `${what}: expected HTTP ${wanted.join('/')}, got ${result.status} ${JSON.stringify(result.body)}`,
      );
    }
    return result;
  };
  return {
    clock: s.clock,
    check: s.check,
    sweep: s.sweep,
    /** Creates a provisioning key and registers the device with it. */
    async register(label: string, fields: Record<string, unknown> = {}) {
      const key = await expect(
        s.request('POST', '/api/v1/provisioning-keys', {
          token: s.adminToken,
          body: { fleet_id: 'fleet-fixtures', description: 'fixture recording' },
        }),
        'create provisioning key',
      );
      provisioningKey = key.body.key as string;
      s.clock.advance('1s');
      return expect(
        s.request('POST', '/api/v1/device/register', {
          token: provisioningKey,
          label,
          body: {
            uuid,
            deviceName: `fixture-${uuid.slice(0, 8)}`,
            deviceType: 'raspberry-pi-4',
            deviceApiKey: deviceKey,
            macAddress: 'b8:27:eb:12:34:56',
            osVersion: 'balenaOS 5.3.1',
            supervisorVersion: '16.4.0',
            ...fields,
          },
        }),
        'register',
        201,
      );
    },
    target: (apps: Record<string, unknown>, config: Record<string, unknown>, label: string) =>
      expect(
        s.request('POST', `/api/v1/devices/${uuid}/target-state`, {
          token: s.adminToken,
          body: { apps, config },
          label,
        }),
        `target (${label})`,
      ),
    active: (isActive: boolean, reason: string | undefined, label: string) =>
      expect(
        s.request('PATCH', `/api/v1/devices/${uuid}/active`, {
          token: s.adminToken,
          body: { is_active: isActive, ...(reason === undefined ? {} : { reason }) },
          label,
        }),
        `active (${label})`,
      ),
    report: (report: Record<string, unknown>, label: string, status: number | number[] = 200) =>
      expect(
        s.request('PATCH', '/api/v1/device/state', { token: deviceKey, body: { [uuid]: report }, label }),
        `report (${label})`,
        status,
      ),
    poll: () =>
      expect(s.request('GET', `/api/v1/device/${uuid}/target-state`, { token: deviceKey }), 'poll', [200, 304, 403]),
    /** A new provisioning key for the fixture fleet (the secret, shown once). */
    async provisioningKey(): Promise<string> {
      const key = await expect(
        s.request('POST', '/api/v1/provisioning-keys', {
          token: s.adminToken,
          body: { fleet_id: 'fleet-fixtures', description: 'fixture recording' },
        }),
        'create provisioning key',
      );
      return key.body.key as string;
    },
    /** Sends a request built elsewhere (the device agent's, test/helpers/agent-protocol.ts) exactly as built. */
    send: (req: AgentRequest, label: string, status: number | number[] = [200, 201]) =>
      expect(s.send(req, label), `${req.method} ${req.path} (${label})`, status),
  };
}

const service = (serviceName: string, image: string) => ({ serviceName, image });
const running = (image: string, containerId: string, extra: Record<string, unknown> = {}) => ({
  status: 'Running',
  image,
  containerId,
  ...extra,
});
const resources = (cpu: number, memory: number) => ({
  cpu_usage: cpu,
  memory_usage: memory,
  storage_usage: 41.5,
  cpu_temp: 48,
});

/** The device agent's identity in the device-agent scenario: a fixed uuid, a key in its format. */
const agent: AgentIdentity = {
  uuid: '0f1e0008-0000-4000-8000-000000000008',
  deviceApiKey: '8'.repeat(64),
  deviceName: 'device-0f1e0008',
};

/** The agent's containers with one service's container replaced (a new image, a new container id). */
const replaced = (containers: AgentContainer[], serviceName: string, image: string, containerId: string) =>
  containers.map((c) => (c.serviceName === serviceName ? { ...c, image, containerId } : c));

/** Every scenario recorded into fixtures/. */
export const scenarios: Scenario[] = [
  {
    name: 'provision-target-converge',
    description:
      'A device registers, reports in with no apps, gets its first target, downloads the image and converges.',
    device: '0f1e0001-0000-4000-8000-000000000001',
    start: '2026-03-02T08:00:00.000Z',
    async run(api) {
      await api.register('device registers');
      api.check({ is_active: true, target: null, 'drift.in_sync': true });
      api.clock.advance('30s');
      await api.poll();
      await api.report(
        { apps: {}, ip_address: '192.168.1.40', uptime: 35, ...resources(12, 20) },
        'device reports in, no apps',
      );
      api.clock.advance('2m');
      await api.target(
        { '1000': { appId: 1000, appName: 'web', services: [service('main', 'registry.example/web:1.0')] } },
        { DEVICE_HOSTNAME: 'kiosk-1' },
        'admin sets target v1',
      );
      api.check({ 'target.version': 1, 'drift.in_sync': false });
      api.clock.advance('20s');
      await api.report({
        apps: {
          '1000': {
            status: 'Downloading',
            services: { main: { status: 'Downloading', image: 'registry.example/web:1.0', downloadProgress: 40 } },
          },
        },
        ...resources(55, 31),
      }, 'device downloads the image (40%)');
      api.clock.advance('40s');
      await api.report({
        apps: {
          '1000': {
            status: 'Installing',
            services: { main: { status: 'Installing', image: 'registry.example/web:1.0', downloadProgress: 100 } },
          },
        },
        ...resources(61, 35),
      }, 'download done, installing');
      api.clock.advance('30s');
      await api.report({
        apps: { '1000': { status: 'Running', services: { main: running('registry.example/web:1.0', 'c-web-1') } } },
        uptime: 155,
        ...resources(18, 38),
      }, 'the app runs: in sync');
      api.check({ 'drift.in_sync': true, drift_since: null });
      api.clock.advance('5m');
      await api.report({ uptime: 455, ...resources(9, 37) }, 'a later report changes only resources');
    },
  },
  {
    name: 'drift-and-recovery',
    description:
      'A converged device loses a service (crash), recovers, then drifts on config and recovers again; crosses midnight UTC.',
    device: '0f1e0002-0000-4000-8000-000000000002',
    start: '2026-03-03T22:30:00.000Z',
    async run(api) {
      await api.register('device registers');
      api.clock.advance('1m');
      const apps = {
        '1000': { appId: 1000, appName: 'web', services: [service('main', 'registry.example/web:2.0')] },
        '2000': { appId: 2000, appName: 'worker', services: [service('worker', 'registry.example/worker:2.0')] },
      };
      await api.target(apps, { LOG_LEVEL: 'info' }, 'admin sets target v1 (web + worker)');
      api.clock.advance('3m');
      const healthy = {
        '1000': { services: { main: running('registry.example/web:2.0', 'c-web') } },
        '2000': { services: { worker: running('registry.example/worker:2.0', 'c-worker') } },
      };
      await api.report(
        { apps: healthy, config: { LOG_LEVEL: 'info' }, ...resources(20, 40) },
        'both apps run: in sync',
      );
      api.check({ 'drift.in_sync': true });
      api.clock.advance('1h');
      await api.report({
        apps: {
          ...healthy,
          '2000': {
            services: {
              worker: {
                status: 'Exited',
                image: 'registry.example/worker:2.0',
                containerId: 'c-worker',
                exitCode: 1,
                restartCount: 1,
              },
            },
          },
        },
        ...resources(8, 30),
      }, 'the worker crashes (exit 1): drift');
      api.check({ 'drift.in_sync': false });
      api.clock.advance('10m');
      await api.report({ ...resources(7, 29) }, 'still crashed, resources change');
      api.clock.advance('5m');
      await api.report({
        apps: {
          ...healthy,
          '2000': { services: { worker: running('registry.example/worker:2.0', 'c-worker-2', { restartCount: 2 }) } },
        },
        ...resources(22, 41),
      }, 'the worker is back: in sync');
      api.check({ 'drift.in_sync': true, drift_since: null });
      api.clock.advance('2h');
      await api.report(
        { config: { LOG_LEVEL: 'debug' }, ...resources(25, 43) },
        'someone sets LOG_LEVEL=debug on the device: config drift',
      );
      api.check({ 'drift.in_sync': false, 'drift.config_differs': ['LOG_LEVEL'] });
      api.clock.advance('15m');
      await api.report({ config: { LOG_LEVEL: 'info' }, ...resources(21, 40) }, 'config restored: in sync');
    },
  },
  {
    name: 'failing-service',
    description: 'A target whose database service keeps crashing and restarting; the device never converges.',
    device: '0f1e0003-0000-4000-8000-000000000003',
    start: '2026-03-05T06:00:00.000Z',
    async run(api) {
      await api.register('device registers');
      api.clock.advance('2m');
      await api.target(
        {
          '3000': {
            appId: 3000,
            appName: 'shop',
            services: [service('api', 'registry.example/shop-api:3.1'), service('db', 'postgres:16')],
          },
        },
        { TZ: 'UTC' },
        'admin sets target v1 (api + db)',
      );
      api.clock.advance('1m');
      await api.report({
        apps: {
          '3000': {
            services: { api: running('registry.example/shop-api:3.1', 'c-api'), db: running('postgres:16', 'c-db-1') },
          },
        },
        ...resources(30, 50),
      }, 'both services start: in sync');
      for (let attempt = 1; attempt <= 4; attempt += 1) {
        api.clock.advance('2m');
        await api.report({
          apps: {
            '3000': {
              services: {
                api: running('registry.example/shop-api:3.1', 'c-api'),
                db: {
                  status: 'Exited',
                  image: 'postgres:16',
                  containerId: `c-db-${attempt}`,
                  exitCode: 137,
                  restartCount: attempt,
                },
              },
            },
          },
          ...resources(35 + attempt, 55),
        }, `db is killed (exit 137), restart ${attempt}`);
        api.clock.advance('30s');
        await api.report({
          apps: {
            '3000': {
              services: {
                api: running('registry.example/shop-api:3.1', 'c-api'),
                db: {
                  status: 'Restarting',
                  image: 'postgres:16',
                  containerId: `c-db-${attempt + 1}`,
                  restartCount: attempt,
                },
              },
            },
          },
          ...resources(40 + attempt, 57),
        }, `db restarting (${attempt})`);
      }
      api.check({ 'drift.in_sync': false });
      api.clock.advance('10m');
      await api.report({
        apps: {
          '3000': {
            services: {
              api: running('registry.example/shop-api:3.1', 'c-api'),
              db: { status: 'Exited', image: 'postgres:16', containerId: 'c-db-5', exitCode: 137, restartCount: 5 },
            },
          },
        },
        update_status: 'failed',
        ...resources(33, 60),
      }, 'the device gives up on db');
    },
  },
  {
    name: 'disable-enable',
    description:
      'An admin disables a device for maintenance (its reports are refused meanwhile) and enables it again, with reasons.',
    device: '0f1e0004-0000-4000-8000-000000000004',
    start: '2026-03-06T09:00:00.000Z',
    async run(api) {
      await api.register('device registers');
      api.clock.advance('1m');
      await api.target(
        { '4000': { appId: 4000, appName: 'sensor', services: [service('reader', 'registry.example/sensor:1.4')] } },
        {},
        'admin sets target v1',
      );
      api.clock.advance('2m');
      await api.report({
        apps: { '4000': { services: { reader: running('registry.example/sensor:1.4', 'c-reader') } } },
        ...resources(5, 12),
      }, 'device converges');
      api.clock.advance('30m');
      await api.active(false, 'maintenance window: replacing the power supply', 'admin disables the device');
      api.check({ is_active: false });
      api.clock.advance('5m');
      await api.report({ ...resources(3, 10) }, 'a report while disabled is refused (403), nothing written', 403);
      api.clock.advance('55m');
      await api.active(true, 'maintenance done', 'admin enables the device');
      api.check({ is_active: true });
      api.clock.advance('1m');
      await api.report({ uptime: 60, ...resources(14, 15) }, 'device reports after the reboot');
      api.clock.advance('3h');
      await api.active(false, undefined, 'admin disables it again, without a reason');
      api.clock.advance('10m');
      await api.active(true, 'back in service', 'and enables it');
    },
  },
  {
    name: 'target-changed-before-convergence',
    description:
      'Target v1 is replaced by v2 while the device is still downloading v1; the device converges to v2 and v1 never is reached.',
    device: '0f1e0005-0000-4000-8000-000000000005',
    start: '2026-03-07T14:00:00.000Z',
    async run(api) {
      await api.register('device registers');
      api.clock.advance('1m');
      await api.target(
        { '5000': { appId: 5000, appName: 'player', services: [service('main', 'registry.example/player:1.0')] } },
        { VOLUME: 70 },
        'admin sets target v1 (player 1.0)',
      );
      api.clock.advance('30s');
      await api.report({
        apps: {
          '5000': {
            services: { main: { status: 'Downloading', image: 'registry.example/player:1.0', downloadProgress: 30 } },
          },
        },
        ...resources(50, 20),
      }, 'device downloads 1.0 (30%)');
      api.clock.advance('1m');
      await api.target(
        { '5000': { appId: 5000, appName: 'player', services: [service('main', 'registry.example/player:1.1')] } },
        { VOLUME: 70 },
        'admin sets target v2 (player 1.1) before v1 was reached',
      );
      api.check({ 'target.version': 2, 'drift.in_sync': false });
      api.clock.advance('45s');
      await api.report({
        apps: {
          '5000': {
            services: { main: { status: 'Downloading', image: 'registry.example/player:1.1', downloadProgress: 55 } },
          },
        },
        ...resources(58, 22),
      }, 'device switches to downloading 1.1 (55%)');
      api.clock.advance('1m');
      await api.report({
        apps: { '5000': { services: { main: running('registry.example/player:1.1', 'c-player') } } },
        ...resources(15, 25),
      }, 'player 1.1 runs: in sync with v2');
      api.check({ 'drift.in_sync': true, 'target.version': 2 });
    },
  },
  {
    name: 'many-apps',
    description:
      'A gateway with twelve apps (one to three services each) converges step by step; then v2 removes two apps and adds one.',
    device: '0f1e0006-0000-4000-8000-000000000006',
    start: '2026-03-08T03:00:00.000Z',
    async run(api) {
      await api.register('device registers', { deviceType: 'intel-nuc' });
      const app = (n: number, version: string) => {
        const names = ['main', 'sidecar', 'cache'].slice(0, 1 + (n % 3));
        return [String(6000 + n), {
          appId: 6000 + n,
          appName: `app-${n}`,
          services: names.map((name) => service(name, `registry.example/app-${n}-${name}:${version}`)),
        }] as const;
      };
      const v1 = Object.fromEntries(Array.from({ length: 12 }, (_, n) => app(n, '1')));
      const config = { REGION: 'eu-west', LOG_LEVEL: 'info', NTP: 'pool.ntp.org', TZ: 'UTC', METRICS: 'on', RETRY: 3 };
      api.clock.advance('5m');
      await api.target(v1, config, 'admin sets target v1 (12 apps)');
      const reported = (
        apps: Record<string, { services: { serviceName: string; image: string }[] }>,
        runningCount: number,
      ) =>
        Object.fromEntries(
          Object.entries(apps).map(([id, a], i) => [id, {
            services: Object.fromEntries(a.services.map((s) => [
              s.serviceName,
              i < runningCount
                ? running(s.image, `c-${id}-${s.serviceName}`)
                : { status: 'Downloading', image: s.image, downloadProgress: 10 },
            ])),
          }]),
        );
      for (
        const [count, label] of [[4, 'a third of the apps run'], [11, 'all but one app run'], [
          12,
          'all twelve apps run: in sync',
        ]] as const
      ) {
        api.clock.advance('3m');
        await api.report(
          { apps: reported(v1 as never, count), config, ...resources(20 + count * 3, 30 + count * 2) },
          label,
        );
      }
      api.check({ 'drift.in_sync': true });
      api.clock.advance('1h');
      const v2 = Object.fromEntries([
        ...Object.entries(v1).filter(([id]) => id !== '6000' && id !== '6001'),
        app(12, '1'),
      ]);
      await api.target(v2, config, 'admin sets target v2 (-6000 -6001 +6012)');
      api.check({ 'target.version': 2, 'drift.in_sync': false });
      api.clock.advance('4m');
      await api.report({ apps: reported(v2 as never, 11), config, ...resources(60, 70) }, 'new app still downloading');
      api.clock.advance('2m');
      await api.report(
        { apps: reported(v2 as never, 11 + 1), config, ...resources(45, 68) },
        'v2 fully running: in sync',
      );
      api.check({ 'drift.in_sync': true, 'target.version': 2 });
    },
  },
  {
    name: 'volumes-networks-connectivity',
    description:
      'Volumes and networks come and go, an image pull fails, the device goes silent past the connectivity timeout and comes back, and a target nobody reaches times out.',
    device: '0f1e0007-0000-4000-8000-000000000007',
    start: '2026-03-10T07:00:00.000Z',
    async run(api) {
      await api.register('device registers');
      api.clock.advance('1m');
      await api.target(
        {
          '7000': {
            appId: 7000,
            appName: 'edge',
            services: [service('main', 'registry.example/edge:1'), service('cache', 'redis:7')],
          },
        },
        {},
        'admin sets target v1 (edge + redis)',
      );
      api.clock.advance('1m');
      await api.report({
        apps: {
          '7000': {
            services: {
              main: { status: 'Downloading', image: 'registry.example/edge:1', downloadProgress: 60 },
              cache: { status: 'Downloading', image: 'redis:7', imagePullError: 'manifest for redis:7 not found' },
            },
          },
        },
        ...resources(30, 20),
      }, 'the redis image pull fails');
      api.clock.advance('2m');
      await api.report({
        apps: {
          '7000': {
            services: { main: running('registry.example/edge:1', 'c-edge'), cache: running('redis:7', 'c-redis') },
            volumes: ['edge-data', 'redis-data'],
            networks: ['edge-net'],
          },
        },
        ...resources(22, 35),
      }, 'both run, with two volumes and a network: in sync');
      api.check({ 'drift.in_sync': true });
      api.clock.advance('10m');
      await api.report({
        apps: {
          '7000': {
            services: { main: running('registry.example/edge:1', 'c-edge'), cache: running('redis:7', 'c-redis') },
            volumes: ['edge-data'],
            networks: [],
          },
        },
        ...resources(21, 33),
      }, 'a volume and the network are removed');
      api.clock.advance('20m');
      await api.sweep('silent for 20 minutes: the sweeper marks the connection lost');
      api.check({ 'connectivity.status': 'lost' });
      api.clock.advance('5m');
      await api.poll();
      api.check({ 'connectivity.status': 'online' });
      api.clock.advance('1m');
      await api.target(
        {
          '7000': {
            appId: 7000,
            appName: 'edge',
            services: [service('main', 'registry.example/edge:2'), service('cache', 'redis:7')],
          },
        },
        {},
        'admin sets target v2 (edge 2)',
      );
      api.clock.advance('31m');
      await api.poll();
      await api.sweep('v2 not reached within 30 minutes: reconciliation fails');
      api.check({ 'drift.in_sync': false, 'reconciliation.status': 'failed' });
      api.clock.advance('4m');
      await api.report({
        apps: {
          '7000': {
            services: { main: running('registry.example/edge:2', 'c-edge-2'), cache: running('redis:7', 'c-redis') },
            volumes: ['edge-data'],
            networks: [],
          },
        },
        ...resources(19, 30),
      }, 'edge 2 finally runs: in sync');
    },
  },
  {
    name: 'device-agent',
    description:
      'The device agent of dsamborschi/zemfyre-sensor, its requests as it builds them: provisions (applicationId, agentVersion), exchanges keys, polls, reports two apps and four containers (gzip, services listed, imageName); a target moving one image is drift until it runs it, a stale report does not complete it.',
    device: agent.uuid,
    start: '2026-03-10T07:00:00.000Z',
    async run(api) {
      const key = await api.provisioningKey();
      api.clock.advance('1s');
      await api.send(
        registerRequest(agent, key, { applicationId: 42, agentVersion: '1.0.0' }),
        'the agent registers (Phase 1)',
        201,
      );
      api.check({ application_id: 42, agent_version: '1.0.0', device_type: 'standalone' });
      await api.send(keyExchangeRequest(agent), 'key exchange (Phase 2): nothing written', 200);
      api.clock.advance('2s');
      await api.send(pollRequest(agent), 'first poll: no target yet (version 0)', 200);
      const v310 = twoAppsFourContainers('registry.example/web:3.1.0');
      api.clock.advance('8s');
      await api.send(
        reportRequest(agent, stateReport(agent, v310, { first: true, metrics: true })),
        'first report: two apps, four running containers (gzip, services listed)',
      );
      api.check({ 'current.system.agent_version': '1.0.0', 'containers.1002.node-red.status': 'running' });
      api.clock.advance('1m');
      await api.target(agentTarget(v310).apps, {}, 'admin sets target v1 in the agent shape (imageName): in sync');
      api.check({ 'target.version': 1, 'drift.in_sync': true });
      api.clock.advance('30s');
      await api.send(pollRequest(agent, '"0"'), 'poll: target v1', 200);
      api.clock.advance('1m');
      await api.send(pollRequest(agent, '"1"'), 'poll: unchanged (304)', 304);
      const v313 = replaced(v310, 'nginx', 'registry.example/web:3.1.3', 'e'.repeat(64));
      api.clock.advance('10m');
      await api.target(agentTarget(v313).apps, {}, 'admin moves nginx 3.1.0 → 3.1.3 (target v2): drift');
      api.check({
        'target.version': 2,
        'drift.in_sync': false,
        'drift.services.0.problem': 'wrong_image',
        'reconciliation.status': 'open',
      });
      api.clock.advance('20s');
      await api.send(pollRequest(agent, '"1"'), 'poll: target v2', 200);
      api.clock.advance('5s');
      await api.send(
        reportRequest(agent, stateReport(agent, v310, { version: 2, metrics: true })),
        'a stale report (fetched v2, still runs 3.1.0): still drift',
      );
      api.check({ 'drift.in_sync': false, 'reconciliation.status': 'open' });
      api.clock.advance('40s');
      await api.send(
        reportRequest(agent, stateReport(agent, v313, { version: 2 })),
        'the agent runs 3.1.3 in a new container: in sync, reconciliation completed',
      );
      api.check({
        'drift.in_sync': true,
        'reconciliation.status': 'completed',
        'reconciliation.target_version': 2,
        'containers.1001.nginx.image': 'registry.example/web:3.1.3',
      });
    },
  },
  {
    name: 'seed-walkthrough',
    description: "The seed document's curl examples, in order: register, target, report, disable, enable.",
    device: '12345678-1234-1234-1234-123456789abc',
    start: '2026-03-09T12:00:00.000Z',
    async run(api) {
      await api.register('POST /api/v1/device/register (seed body)', {
        deviceName: 'test-device-001',
        osVersion: undefined,
        supervisorVersion: undefined,
      });
      api.clock.advance('1m');
      await api.target(
        { '1000': { appId: 1000, appName: 'my-app', services: [] } },
        { DEVICE_HOSTNAME: 'my-device' },
        'POST target-state (seed body)',
      );
      api.clock.advance('1m');
      await api.report({
        apps: { '1000': { status: 'running', containerId: 'abc123' } },
        ip_address: '192.168.1.100',
        cpu_usage: 25.5,
        memory_usage: 45.2,
      }, 'PATCH /api/v1/device/state (seed body)');
      api.check({ 'drift.in_sync': true, 'current.resources.cpu_usage': 25.5 });
      api.clock.advance('1m');
      await api.active(false, undefined, 'PATCH active {"is_active": false}');
      api.clock.advance('1m');
      await api.active(true, undefined, 'PATCH active {"is_active": true}');
    },
  },
];
