// What the HTTP layer needs, built once per database pool and passed to every route.
import { randomBytes } from 'node:crypto';
import type { DatabasePool } from 'slonik';
import {
  createAdminTokens,
  createCredentialHasher,
  createDeviceKeys,
  type CredentialHasher,
} from '../../infra/devices/credentials.ts';
import { createDeviceQueries } from '../../infra/devices/device-queries.ts';
import { createEventStore, type EventStore } from '../../infra/event-store/event-store.ts';
import { createProvisioningKeyQueries } from '../../infra/devices/provisioning-key-store.ts';
import { DEFAULT_ADDRESS_POLICY, type WebhookAddressPolicy } from '../../infra/webhooks/address-policy.ts';
import { type ConsoleSessions, createConsoleSessions } from '../../infra/console/sessions.ts';
import { createSecretHasher, type SecretHasher } from '../../infra/secrets/hasher.ts';
import { DEFAULT_LIVE_STREAM_LIMITS, type LiveStreamLimits } from './live-streams.ts';
import { createDeliveryRecorder, type DeliveryRecorder } from '../target-deliveries.ts';
import { type AuthThrottle, type AuthThrottleLimits, createAuthThrottle } from './middleware/auth-throttle.ts';

/** Dependencies of the app; `clock` is injectable so tests control time. */
export type AppDeps = {
  pool: DatabasePool;
  /**
   * Where reads that need not see the caller's own write go (REPLICA_DATABASE_URL, issue #19):
   * replay, analytics, fleet-at-instant, the feed and the console's fleet, history and
   * analytics pages. The primary's pool when there is no replica.
   */
  readPool: DatabasePool;
  /** The device queries on `readPool` (the console's fleet list). */
  readDevices: ReturnType<typeof createDeviceQueries>;
  store: EventStore;
  clock: () => Date;
  /** Hashes every stored credential with the server's pepper (CREDENTIAL_PEPPER or DATA_DIR/credential-pepper). */
  credentials: CredentialHasher;
  /** Failed authentications per address and key prefix (AUTH_FAILURE_LIMIT*); null: not throttled. */
  authThrottle: AuthThrottle | null;
  adminTokens: ReturnType<typeof createAdminTokens>;
  deviceKeys: ReturnType<typeof createDeviceKeys>;
  provisioningKeys: ReturnType<typeof createProvisioningKeyQueries>;
  devices: ReturnType<typeof createDeviceQueries>;
  /**
   * Issues a device's MQTT credential (app/mqtt/transport.ts): the registration reply and a
   * key exchange asking for it carry it. Absent when MQTT is off: the replies then hold nulls.
   */
  mqtt?: MqttCredentialIssuer;
  bodyLimitKb: number;
  /** SSE stream caps and credential re-check period (SSE_MAX_STREAMS, SSE_MAX_STREAMS_PER_TOKEN, SSE_CREDENTIAL_RECHECK). */
  liveStreams: LiveStreamLimits;
  /** Where unexpected errors go (never to the client). */
  logError: (message: string, error: unknown) => void;
  /** Which webhook URLs may be registered (WEBHOOK_ALLOW_PRIVATE; tests give a stub resolver). */
  webhookPolicy: WebhookAddressPolicy;
  /** The admin console's sessions (issue #17). */
  consoleSessions: ConsoleSessions;
  /** Console session lifetime and when its cookie is Secure (CONSOLE_SESSION_TTL, CONSOLE_SECURE_COOKIE). */
  console: ConsoleSettings;
  /** RETENTION_DAYS, for the retention report (GET /api/v1/partitions, the console). */
  retentionDays: number;
  /** Largest decoded device log upload (LOGS_BODY_LIMIT_KB). */
  logsBodyLimitKb: number;
  /** Notes the first delivery of each target version over HTTP (the lifecycle analytics' per-transport times). */
  deliveries: DeliveryRecorder;
  /** Hashes secret values before anything is stored (SECRETS_KEY or DATA_DIR/secrets-key; README "Secrets"). */
  secrets: SecretHasher;
};

/** A device's new MQTT credential; null when the device is not registered. `requestHost` names the broker for it. */
export type MqttCredentialIssuer = {
  issueCredentials: (
    uuid: string,
    requestHost?: string,
  ) => Promise<{ username: string; password: string; broker: string } | null>;
  /** The broker mode, for the console (absent: not said). */
  mode?: 'embedded' | 'external';
  /** Whether the device is connected now; null when the broker does not say (an external one). */
  isConnected?: (uuid: string) => boolean | null;
};

/** The console's settings: `secureCookie` 'auto' marks the cookie Secure on HTTPS requests only. */
export type ConsoleSettings = { sessionTtlMs: number; secureCookie: 'auto' | 'always' };

/**
 * The pepper of a process that is given none (tests, benchmarks): hashes made with it mean
 * nothing to another process. The service always passes its own (app/credential-pepper.ts).
 */
const PROCESS_PEPPER = randomBytes(32).toString('base64url');

/** Builds the dependencies for a pool. */
export function createDeps(
  pool: DatabasePool,
  options: {
    clock?: () => Date;
    /** The pepper credential hashes are keyed with; omitted: one made for this process. */
    credentialPepper?: string;
    /** Failed-authentication throttle limits; omitted: none. */
    authThrottle?: AuthThrottleLimits;
    bodyLimitKb?: number;
    liveStreams?: Partial<LiveStreamLimits>;
    logError?: AppDeps['logError'];
    webhookPolicy?: Partial<WebhookAddressPolicy>;
    console?: Partial<ConsoleSettings>;
    retentionDays?: number;
    logsBodyLimitKb?: number;
    /** The service passes its key's hasher; without one (tests, tools) a key of this process is made. */
    secrets?: SecretHasher;
    /** A streaming replica's pool for the reads `readPool` names (default: `pool`). */
    readPool?: DatabasePool;
  } = {},
): AppDeps {
  const clock = options.clock ?? (() => new Date());
  const logError: AppDeps['logError'] = options.logError ?? ((message, error) => console.error(message, error));
  const readPool = options.readPool ?? pool;
  const credentials = createCredentialHasher(options.credentialPepper ?? PROCESS_PEPPER);
  return {
    pool,
    readPool,
    readDevices: readPool === pool ? createDeviceQueries(pool) : createDeviceQueries(readPool),
    store: createEventStore(pool),
    clock,
    credentials,
    authThrottle: options.authThrottle === undefined
      ? null
      : createAuthThrottle(options.authThrottle, () => clock().getTime()),
    adminTokens: createAdminTokens(pool, credentials),
    deviceKeys: createDeviceKeys(pool, credentials),
    provisioningKeys: createProvisioningKeyQueries(pool, credentials),
    devices: createDeviceQueries(pool),
    bodyLimitKb: options.bodyLimitKb ?? 256,
    liveStreams: { ...DEFAULT_LIVE_STREAM_LIMITS, ...options.liveStreams },
    logError,
    webhookPolicy: { ...DEFAULT_ADDRESS_POLICY, ...options.webhookPolicy },
    consoleSessions: createConsoleSessions(pool, credentials),
    console: { sessionTtlMs: 8 * 3_600_000, secureCookie: 'auto', ...options.console },
    retentionDays: options.retentionDays ?? 90,
    logsBodyLimitKb: options.logsBodyLimitKb ?? 1024,
    deliveries: createDeliveryRecorder(pool, clock, logError),
    secrets: options.secrets ?? createSecretHasher(randomBytes(32)),
  };
}
