// A scripted device's life, as data: each step is an HTTP call (or a sweep) at an offset from
// the start. The acceptance test drives it with an injected clock; a fixture recorder can
// replay the same steps against a service whose clock it controls.

/** One scripted step, `at` milliseconds after the scenario starts. */
export type ScenarioStep =
  | { at: number; do: 'register' }
  | { at: number; do: 'set_target'; body: { apps: Record<string, unknown>; config: Record<string, unknown> } }
  | { at: number; do: 'poll' }
  | { at: number; do: 'report'; report: Record<string, unknown> }
  | { at: number; do: 'device_events'; body: { events: unknown[] } }
  | { at: number; do: 'set_active'; body: { is_active: boolean; reason?: string } }
  | { at: number; do: 'sweep' };

/** What a runner needs: a clock to set and the calls to make. */
export type ScenarioDriver = {
  setTime: (at: Date) => void;
  register: () => Promise<void>;
  setTarget: (body: Extract<ScenarioStep, { do: 'set_target' }>['body']) => Promise<void>;
  poll: () => Promise<void>;
  report: (report: Record<string, unknown>) => Promise<void>;
  deviceEvents: (body: { events: unknown[] }) => Promise<void>;
  setActive: (body: { is_active: boolean; reason?: string }) => Promise<void>;
  sweep: () => Promise<void>;
};

const s = 1000;
const min = 60 * s;

/** The instant the scenario starts. */
export const SCENARIO_START = new Date('2026-03-02T08:00:00.000Z');

/** Timeouts the scenario assumes (the service's defaults). */
export const SCENARIO_TIMEOUTS = { reconciliationMs: 30 * min, connectivityMs: 15 * min };

const web = (main: Record<string, unknown>, worker: Record<string, unknown>) => ({
  services: { main, worker },
  volumes: ['web-data'],
  networks: ['web-net'],
});
const mainV1 = { status: 'Running', containerId: 'c-main-1', image: 'registry.local/web:1', restartCount: 0 };
const worker = (fields: Record<string, unknown>) => ({
  containerId: 'c-worker-1',
  image: 'registry.local/worker:1',
  ...fields,
});
// the seed's shape: an app without services is one service named after the app
const seedApp = { status: 'running', containerId: 'abc123' };

const targetV1 = {
  apps: {
    '1000': {
      appId: 1000,
      appName: 'web',
      services: [{ serviceName: 'main', image: 'registry.local/web:1' }, {
        serviceName: 'worker',
        image: 'registry.local/worker:1',
      }],
    },
    '2000': { appId: 2000, appName: 'seed-app', services: [] },
  },
  config: { DEVICE_HOSTNAME: 'scripted-device' },
};
const targetV2 = {
  apps: {
    '1000': {
      appId: 1000,
      appName: 'web',
      services: [{ serviceName: 'main', image: 'registry.local/web:2' }, {
        serviceName: 'worker',
        image: 'registry.local/worker:1',
      }],
    },
    '2000': targetV1.apps['2000'],
  },
  config: targetV1.config,
};

/**
 * Starts its apps, crashes the worker twice (once seen exited, once only as a higher restart
 * count), pulls a new image for target v2 and converges 3 minutes after it, goes silent past
 * CONNECTIVITY_TIMEOUT and comes back.
 */
export const lifecycleScenario: ScenarioStep[] = [
  { at: 0, do: 'register' },
  { at: 10 * s, do: 'set_target', body: targetV1 },
  { at: 20 * s, do: 'poll' },
  {
    at: 1 * min,
    do: 'report',
    report: {
      apps: { '1000': web(mainV1, worker({ status: 'Running', restartCount: 0 })), '2000': seedApp },
      cpu_usage: 10,
    },
  },
  {
    at: 2 * min,
    do: 'report',
    report: {
      apps: { '1000': web(mainV1, worker({ status: 'Exited', exitCode: 137, restartCount: 0 })), '2000': seedApp },
      cpu_usage: 12,
    },
  },
  {
    at: 2 * min + 30 * s,
    do: 'report',
    report: {
      apps: { '1000': web(mainV1, worker({ status: 'Running', restartCount: 1 })), '2000': seedApp },
      cpu_usage: 11,
    },
  },
  {
    at: 4 * min,
    do: 'report',
    report: {
      apps: { '1000': web(mainV1, worker({ status: 'Running', restartCount: 2 })), '2000': seedApp },
      cpu_usage: 13,
    },
  },
  { at: 5 * min, do: 'set_target', body: targetV2 },
  { at: 5 * min + 30 * s, do: 'poll' },
  {
    at: 6 * min,
    do: 'report',
    report: {
      apps: {
        '1000': web(
          { status: 'Downloading', image: 'registry.local/web:2', downloadProgress: 40 },
          worker({ status: 'Running', restartCount: 2 }),
        ),
        '2000': seedApp,
      },
      cpu_usage: 30,
    },
  },
  {
    at: 7 * min,
    do: 'report',
    report: {
      apps: {
        '1000': web(
          { status: 'Downloaded', image: 'registry.local/web:2', downloadProgress: 100 },
          worker({ status: 'Running', restartCount: 2 }),
        ),
        '2000': seedApp,
      },
      cpu_usage: 20,
    },
  },
  {
    at: 8 * min,
    do: 'report',
    report: {
      apps: {
        '1000': web(
          { status: 'Running', containerId: 'c-main-2', image: 'registry.local/web:2', restartCount: 0 },
          worker({ status: 'Running', restartCount: 2 }),
        ),
        '2000': seedApp,
      },
      cpu_usage: 15,
    },
  },
  { at: 8 * min + 30 * s, do: 'poll' },
  { at: 15 * min, do: 'sweep' },
  { at: 25 * min, do: 'sweep' },
  { at: 26 * min, do: 'sweep' },
  { at: 40 * min, do: 'poll' },
  { at: 40 * min + 10 * s, do: 'report', report: { cpu_usage: 9 } },
  { at: 41 * min, do: 'sweep' },
];

/** Runs the steps in order, setting the clock before each. */
export async function runScenario(steps: readonly ScenarioStep[], start: Date, driver: ScenarioDriver): Promise<void> {
  for (const step of steps) {
    driver.setTime(new Date(start.getTime() + step.at));
    switch (step.do) {
      case 'register':
        await driver.register();
        break;
      case 'set_target':
        await driver.setTarget(step.body);
        break;
      case 'poll':
        await driver.poll();
        break;
      case 'report':
        await driver.report(step.report);
        break;
      case 'device_events':
        await driver.deviceEvents(step.body);
        break;
      case 'set_active':
        await driver.setActive(step.body);
        break;
      case 'sweep':
        await driver.sweep();
        break;
      default: {
        const unreachable: never = step;
        throw new Error(`unknown step ${JSON.stringify(unreachable)}`);
      }
    }
  }
}
