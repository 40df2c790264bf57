// Drift: how what a device runs differs from what its target says it should run.
import type { ReportedApp, TargetState } from './events.ts';
import { own } from '../own.ts';
import { environmentOf } from './secrets.ts';
import { imageOf } from './services.ts';

/** The current state as far as drift needs it. */
export type CurrentForDrift = {
  apps: Record<string, ReportedApp>;
  config?: Record<string, unknown> | undefined;
};

/** One service that is not as the target wants it. */
export type ServiceDrift = {
  app_id: string;
  service_name: string;
  problem: 'not_running' | 'missing' | 'wrong_image' | 'wrong_release' | 'wrong_environment';
  expected?: string | undefined;
  actual?: string | undefined;
};

/** What differs between target and current; empty lists when in sync. */
export type Drift = {
  in_sync: boolean;
  apps_missing: string[];
  apps_extra: string[];
  services: ServiceDrift[];
  config_differs: string[];
};

/** Drift of a device with nothing to compare (no target yet). */
export const noDrift = (): Drift => ({
  in_sync: true,
  apps_missing: [],
  apps_extra: [],
  services: [],
  config_differs: [],
});

const isRunning = (status: string | undefined): boolean => status !== undefined && status.toLowerCase() === 'running';

const releaseOf = (o: { releaseId?: number | string | undefined; commit?: string | undefined }) =>
  o.commit ?? (o.releaseId === undefined ? undefined : String(o.releaseId));

/**
 * Compares a target with a current report. A device with no target is in sync.
 * Config is compared only when the device reports `config` (most only report apps).
 * A reported app without `services` counts as one service whose status is the app's.
 */
export function computeDrift(target: TargetState | null, current: CurrentForDrift | null): Drift {
  if (target === null) return noDrift();
  const currentApps = current?.apps ?? {};
  const drift = noDrift();
  for (const appId of Object.keys(target.apps)) {
    if (!Object.hasOwn(currentApps, appId)) drift.apps_missing.push(appId);
  }
  for (const appId of Object.keys(currentApps)) {
    if (!Object.hasOwn(target.apps, appId)) drift.apps_extra.push(appId);
  }
  for (const [appId, targetApp] of Object.entries(target.apps)) {
    const reported = own(currentApps, appId);
    if (reported === undefined) continue;
    const wantRelease = releaseOf(targetApp);
    const haveRelease = releaseOf(reported);
    if (wantRelease !== undefined && haveRelease !== undefined && wantRelease !== haveRelease) {
      drift.services.push({
        app_id: appId,
        service_name: targetApp.appName ?? appId,
        problem: 'wrong_release',
        expected: wantRelease,
        actual: haveRelease,
      });
    }
    const services = targetApp.services ?? [];
    if (services.length === 0) {
      if (reported.services === undefined && !isRunning(reported.status)) {
        drift.services.push({
          app_id: appId,
          service_name: targetApp.appName ?? appId,
          problem: 'not_running',
          actual: reported.status,
        });
      }
      continue;
    }
    for (const service of services) {
      const name = service.serviceName;
      const actual = reported.services === undefined
        ? { status: reported.status, image: undefined }
        : own(reported.services, name);
      // `image` or `imageName`, on either side: a target in the agent's shape names only `imageName`
      if (actual === undefined) {
        drift.services.push({ app_id: appId, service_name: name, problem: 'missing' });
        continue;
      }
      if (!isRunning(actual.status)) {
        drift.services.push({ app_id: appId, service_name: name, problem: 'not_running', actual: actual.status });
      }
      // environment values (markers, README "Secrets"), compared only when the device reports
      // an environment for the service: a changed value is drift, its hash shows which
      const wantEnv = environmentOf(service);
      const haveEnv = environmentOf(actual);
      if (wantEnv !== null && haveEnv !== null) {
        for (const [variable, value] of Object.entries(wantEnv)) {
          const reportedValue = own(haveEnv, variable);
          if (jsonEqual(reportedValue, value)) continue;
          drift.services.push({
            app_id: appId,
            service_name: name,
            problem: 'wrong_environment',
            expected: `${variable}=${String(value)}`,
            ...(reportedValue === undefined ? {} : { actual: `${variable}=${String(reportedValue)}` }),
          });
        }
      }
      const expectedImage = imageOf(service);
      const actualImage = imageOf(actual);
      if (expectedImage !== undefined && actualImage !== undefined && actualImage !== expectedImage) {
        drift.services.push({
          app_id: appId,
          service_name: name,
          problem: 'wrong_image',
          expected: expectedImage,
          actual: actualImage,
        });
      }
    }
  }
  if (current?.config !== undefined) {
    for (const [key, value] of Object.entries(target.config)) {
      if (!jsonEqual(own(current.config, key), value)) drift.config_differs.push(key);
    }
  }
  drift.in_sync = current !== null && drift.apps_missing.length === 0 && drift.apps_extra.length === 0 &&
    drift.services.length === 0 && drift.config_differs.length === 0;
  return drift;
}

/** Structural equality of JSON values, key order ignored. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  const ak = Object.keys(a as object);
  const bk = Object.keys(b as object);
  if (ak.length !== bk.length) return false;
  return ak.every((k) =>
    Object.hasOwn(b, k) && jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}

/**
 * The same JSON value: the same keys in the same order, the same leaves (`Object.is`) and
 * prototypes, so one can stand for the other without any difference, even in JSON.stringify's
 * output.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i += 1) {
      if (!sameJson(a[i], b[i])) return false;
    }
    return true;
  }
  const ak = Object.keys(a);
  const bk = Object.keys(b);
  if (ak.length !== bk.length) return false;
  for (let i = 0; i < ak.length; i += 1) {
    const key = ak[i]!;
    if (key !== bk[i] || !sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key])) {
      return false;
    }
  }
  return true;
}
