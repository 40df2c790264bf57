// Secrets never enter the log (issue #15, item 3): environment values and secret-looking config
// keys are kept as a keyed hash, a marker `hmac-sha256:<key id>:<hex>`. The hashing itself (the
// key, HMAC) is the shell's (infra/secrets/hasher.ts); these functions only walk the shapes of
// targets, reports, events and states and hand each secret value to the hash function they are
// given. The same value under the same key gives the same marker, so drift still sees a change.
import { own } from '../own.ts';
import type { TargetState } from './events.ts';

/** Turns a secret value into its marker (same value, same key → same marker). */
export type HashSecret = (value: unknown) => string;

/** Called for each secret value hashed: its marker and the value (the shell keeps target values). */
export type SecretFound = (marker: string, value: unknown) => void;

const MARKER = /^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$/;

/** True for a stored secret marker (`hmac-sha256:<8 hex key id>:<64 hex>`). */
export function isSecretMarker(value: unknown): value is string {
  return typeof value === 'string' && value.length === 85 && MARKER.test(value);
}

/**
 * Config keys whose values are secrets (README "Secrets"): a name containing PASS, SECRET,
 * TOKEN, KEY, CREDENTIAL or PRIVATE, in any case (`DB_PASSWORD`, `apiKey`, `private_cert`).
 */
export const SECRET_CONFIG_KEY = /(PASS|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE)/i;

/** True when a config key's value is kept as a marker. */
export const isSecretConfigKey = (key: string): boolean => SECRET_CONFIG_KEY.test(key);

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** One secret value as a marker; a marker stays as it is (hashing is idempotent). */
function hashOne(value: unknown, hash: HashSecret, found?: SecretFound): unknown {
  if (isSecretMarker(value)) return value;
  const marker = hash(value);
  found?.(marker, value);
  return marker;
}

/**
 * An `environment`: each value of an object hashed; any other shape (a list of `NAME=value`…)
 * hashed whole. The same object back when nothing changed.
 */
function hashEnvironment(env: unknown, hash: HashSecret, found?: SecretFound): unknown {
  if (!isObject(env)) return hashOne(env, hash, found);
  let out: Json | null = null;
  for (const [name, value] of Object.entries(env)) {
    const hashed = hashOne(value, hash, found);
    if (hashed === value) continue;
    out ??= { ...env };
    out[name] = hashed;
  }
  return out ?? env;
}

/** A service (or an app standing for one): `environment` and `config.environment` hashed. */
function hashService<T>(service: T, hash: HashSecret, found?: SecretFound): T {
  if (!isObject(service)) return service;
  let out: Json | null = null;
  if (Object.hasOwn(service, 'environment')) {
    const env = hashEnvironment(service['environment'], hash, found);
    if (env !== service['environment']) (out ??= { ...service })['environment'] = env;
  }
  const config = service['config'];
  if (isObject(config) && Object.hasOwn(config, 'environment')) {
    const env = hashEnvironment(config['environment'], hash, found);
    if (env !== config['environment']) (out ??= { ...service })['config'] = { ...config, environment: env };
  }
  return (out ?? service) as T;
}

/** Services as a list (targets) or keyed by name (reports), each hashed. */
function hashServices(services: unknown, hash: HashSecret, found?: SecretFound): unknown {
  if (Array.isArray(services)) {
    let out: unknown[] | null = null;
    services.forEach((service, i) => {
      const hashed = hashService(service, hash, found);
      if (hashed !== service) (out ??= [...services])[i] = hashed;
    });
    return out ?? services;
  }
  if (!isObject(services)) return services;
  let out: Json | null = null;
  for (const [name, service] of Object.entries(services)) {
    const hashed = hashService(service, hash, found);
    if (hashed !== service) (out ??= { ...services })[name] = hashed;
  }
  return out ?? services;
}

/** Apps (of a target or a report), each app's own environment and its services' hashed. */
export function hashAppsSecrets<T>(apps: T, hash: HashSecret, found?: SecretFound): T {
  if (!isObject(apps)) return apps;
  let out: Json | null = null;
  for (const [id, app] of Object.entries(apps)) {
    let hashed = hashService(app, hash, found);
    if (isObject(hashed) && Object.hasOwn(hashed, 'services')) {
      const services = hashServices(hashed['services'], hash, found);
      if (services !== hashed['services']) hashed = { ...hashed, services };
    }
    if (hashed !== app) (out ??= { ...apps })[id] = hashed;
  }
  return (out ?? apps) as T;
}

/** Config with the values of secret keys (SECRET_CONFIG_KEY) hashed. */
export function hashConfigSecrets<T>(config: T, hash: HashSecret, found?: SecretFound): T {
  if (!isObject(config)) return config;
  let out: Json | null = null;
  for (const [key, value] of Object.entries(config)) {
    if (!isSecretConfigKey(key)) continue;
    const hashed = hashOne(value, hash, found);
    if (hashed !== value) (out ??= { ...config })[key] = hashed;
  }
  return (out ?? config) as T;
}

/** A target (or anything with `apps` and `config`) with every secret value hashed. */
export function hashTargetSecrets<T extends { apps?: unknown; config?: unknown }>(
  target: T,
  hash: HashSecret,
  found?: SecretFound,
): T {
  const apps = hashAppsSecrets(target.apps, hash, found);
  const config = hashConfigSecrets(target.config, hash, found);
  return apps === target.apps && config === target.config ? target : { ...target, apps, config };
}

/**
 * An event's data as it may be shown or folded: a target's or a report's secrets hashed.
 * Events appended since issue #15 hold markers already (the same data back); older ones may
 * hold values, which every reading path passes through here (infra/postgres/pool.ts).
 */
export function hashEventSecrets<T extends Json>(type: string, data: T, hash: HashSecret): T {
  if (type === 'target_state.updated') {
    const next = isObject(data['new_state']) ? hashTargetSecrets(data['new_state'], hash) : data['new_state'];
    const old = isObject(data['old_state']) ? hashTargetSecrets(data['old_state'], hash) : data['old_state'];
    return next === data['new_state'] && old === data['old_state']
      ? data
      : { ...data, new_state: next, old_state: old };
  }
  if (type === 'current_state.updated') return hashTargetSecrets(data, hash);
  return data;
}

type Targeted = { apps?: unknown; config?: unknown };

/** A folded device state with the secrets of its target and current state hashed. */
export function hashStateSecrets<T extends { status: string }>(state: T, hash: HashSecret): T {
  if (state.status !== 'registered') return state;
  const { target, current } = state as unknown as { target: Targeted | null; current: Targeted | null };
  const hashedTarget = target === null ? null : hashTargetSecrets(target, hash);
  const hashedCurrent = current === null ? null : hashTargetSecrets(current, hash);
  return hashedTarget === target && hashedCurrent === current
    ? state
    : { ...state, target: hashedTarget, current: hashedCurrent };
}

/** One secret of a target, compared with what the device last reported. */
export type SecretMatch = {
  /** `config` for a config key, else the app id. */
  app_id: string | null;
  service_name: string | null;
  name: string;
  /** The target's marker. */
  target: string;
  /** The reported marker; null when the device reported none for it. */
  reported: string | null;
  matched: boolean;
};

/** A service's environment object (`environment`, else `config.environment`); null when it has none. */
export function environmentOf(service: unknown): Json | null {
  if (!isObject(service)) return null;
  const env = service['environment'];
  if (isObject(env)) return env;
  const config = service['config'];
  if (!isObject(config)) return null;
  const nested = config['environment'];
  return isObject(nested) ? nested : null;
}

function reportedService(app: unknown, name: string): unknown {
  if (!isObject(app)) return undefined;
  const services = app['services'];
  if (Array.isArray(services)) {
    return services.find((s) => isObject(s) && (s['serviceName'] === name || s['name'] === name));
  }
  return isObject(services) ? own(services, name) : undefined;
}

/**
 * Each secret marker of a target beside the device's reported one (replay's "whether it
 * matched"): service environment values, then secret config keys. Markers are compared as
 * text: the same value under the same key matches.
 */
export function secretMatches(
  target: Pick<TargetState, 'apps' | 'config'>,
  current: { apps?: unknown; config?: unknown } | null,
): SecretMatch[] {
  const matches: SecretMatch[] = [];
  const currentApps: Json = current !== null && isObject(current.apps) ? current.apps : {};
  for (const [appId, app] of Object.entries(target.apps)) {
    for (const service of app.services ?? []) {
      const env = environmentOf(service);
      if (env === null) continue;
      const reportedEnv = environmentOf(reportedService(own(currentApps, appId), service.serviceName));
      for (const [name, value] of Object.entries(env)) {
        if (!isSecretMarker(value)) continue;
        const reported = reportedEnv === null ? undefined : own(reportedEnv, name);
        matches.push({
          app_id: appId,
          service_name: service.serviceName,
          name,
          target: value,
          reported: typeof reported === 'string' ? reported : null,
          matched: reported === value,
        });
      }
    }
  }
  const currentConfig: Json = current !== null && isObject(current.config) ? current.config : {};
  for (const [key, value] of Object.entries(target.config)) {
    if (!isSecretMarker(value)) continue;
    const reported = own(currentConfig, key);
    matches.push({
      app_id: null,
      service_name: null,
      name: key,
      target: value,
      reported: typeof reported === 'string' ? reported : null,
      matched: reported === value,
    });
  }
  return matches;
}

/**
 * A target as a device receives it: each marker replaced by `reveal(marker)`; an env or
 * config entry whose value is gone (erased, or never kept) is left out (README "Secrets").
 * `reveal` answers `undefined` for a value that is gone.
 */
export function revealTargetSecrets<T extends { apps: unknown; config: unknown }>(
  target: T,
  reveal: (marker: string) => unknown,
): T {
  const restoreEnv = (env: unknown): unknown => {
    if (isSecretMarker(env)) return reveal(env);
    if (!isObject(env)) return env;
    const out: Json = {};
    for (const [name, value] of Object.entries(env)) {
      const shown = isSecretMarker(value) ? reveal(value) : value;
      if (shown !== undefined) out[name] = shown;
    }
    return out;
  };
  const restoreService = (service: unknown): unknown => {
    if (!isObject(service)) return service;
    const out: Json = { ...service };
    if (Object.hasOwn(service, 'environment')) {
      const env = restoreEnv(service['environment']);
      if (env === undefined) delete out['environment'];
      else out['environment'] = env;
    }
    const config = service['config'];
    if (isObject(config) && Object.hasOwn(config, 'environment')) {
      const env = restoreEnv(config['environment']);
      const restored: Json = { ...config };
      if (env === undefined) delete restored['environment'];
      else restored['environment'] = env;
      out['config'] = restored;
    }
    return out;
  };
  const apps: Json = {};
  if (isObject(target.apps)) {
    for (const [id, app] of Object.entries(target.apps)) {
      const restored = restoreService(app);
      const services = isObject(restored) ? restored['services'] : undefined;
      if (isObject(restored) && Array.isArray(services)) restored['services'] = services.map(restoreService);
      apps[id] = restored;
    }
  }
  const config: Json = {};
  if (isObject(target.config)) {
    for (const [key, value] of Object.entries(target.config)) {
      const shown = isSecretMarker(value) ? reveal(value) : value;
      if (shown !== undefined) config[key] = shown;
    }
  }
  return { ...target, apps, config };
}

/** Every marker a target holds (service environments, secret config keys), once each. */
export function targetSecretMarkers(target: { apps: unknown; config: unknown }): string[] {
  const markers = new Set<string>();
  revealTargetSecrets(target, (marker) => {
    markers.add(marker);
    return marker;
  });
  return [...markers];
}
