// One service process: config → logger → database → migrations → partitions → HTTP on PORT,
// the MQTT transport and the background jobs. With WORKERS=1 the process `npm start` runs is
// this (`single`); with WORKERS > 1 each cluster worker is (app/cluster/primary.ts): the
// primary has started the database, migrated and bootstrapped; worker 1 (the lead) runs the
// background jobs and the embedded MQTT broker, the others serve HTTP only.
// SIGTERM/SIGINT/SIGHUP: stop accepting, finish in-flight requests (bounded by SHUTDOWN_TIMEOUT_MS),
// run the stop hooks newest first (jobs and listeners, then the pool, then the embedded
// PostgreSQL; see app/shutdown.ts), exit 0.
import type { Server } from 'node:http';
import { createConnectivitySweeper } from '../infra/devices/connectivity-sweeper.ts';
import type { DatabasePool } from 'slonik';
import { createDatabasePool, redactUrl } from '../infra/postgres/pool.ts';
import { createMaintenanceJob } from '../infra/retention/maintenance-job.ts';
import { migrate } from '../infra/postgres/migrate.ts';
import { ensurePartitionsAhead } from '../infra/event-store/partitions.ts';
import { createReconciliationSweeper } from '../infra/devices/reconciliation-sweeper.ts';
import { createSnapshotter } from '../infra/replay/snapshotter.ts';
import { bootstrapAdminToken } from './bootstrap.ts';
import { assertPepperFitsDatabase, loadCredentialPepper } from './credential-pepper.ts';
import { upgradeStoredSecrets } from '../infra/secrets/secret-values.ts';
import { watchSecretsKey } from '../infra/secrets/key-registry.ts';
import { secretHasherFor, SECRETS_KEY_FILE } from './secrets-key.ts';
import type { Config } from './config.ts';
import { openDatabase } from './database-target.ts';
import { createHttpServer } from './http/server.ts';
import { createApp } from './http/create-app.ts';
import { createDeps, type MqttCredentialIssuer } from './http/deps.ts';
import type { Logger } from './observability/logger.ts';
import { createMetrics, instrumentStore } from './observability/metrics.ts';
import { type MqttCredentials, startMqttTransport } from './mqtt/transport.ts';
import { startRealtimeJobs } from './realtime-jobs.ts';
import { onShutdown, processShutdown, within } from './shutdown.ts';
import { METHODS, shareMetrics, type WorkerIpc } from './cluster/ipc.ts';

/**
 * What this process is: the only one (WORKERS=1), or cluster worker `index` (from 1); the
 * lead worker (1) runs the background jobs and the embedded MQTT broker.
 */
export type ServiceRole = { kind: 'single' } | { kind: 'worker'; index: number; lead: boolean; ipc: WorkerIpc };

const HOUR_MS = 3_600_000;

async function main(config: Config, logger: Logger, role: ServiceRole): Promise<number> {
  const single = role.kind === 'single';
  // the background jobs, once per cluster (and once per instance: several instances are safe, docs/SCALING.md)
  const runsJobs = role.kind === 'single' || role.lead;
  const log = (message: string) => logger.info(message);
  const database = await openDatabase(config, log);
  // a no-op unless embedded (in a cluster the primary stops the embedded server)
  if (single) onShutdown('database server', () => database.stop());
  log(`database: ${database.description}`);
  if (single) {
    // in a cluster the primary has done this once, before forking the workers
    const applied = await migrate(database.url);
    log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`);
  }
  // DB_POOL_SIZE is the process's, or in a cluster the instance's, split among the workers
  const poolSize = single ? config.DB_POOL_SIZE : Math.max(2, Math.ceil(config.DB_POOL_SIZE / config.WORKERS));
  // secrets never leave a read in the clear, old events' included (README "Secrets"); the key
  // file is created once, whichever process comes first (app/secrets-key.ts)
  const secrets = await secretHasherFor(config, log);
  if (single || (role.kind === 'worker' && role.lead)) {
    log(
      `secrets key: ${
        config.SECRETS_KEY === undefined ? `${config.DATA_DIR}/${SECRETS_KEY_FILE}` : 'SECRETS_KEY'
      } (id ${secrets.keyId})`,
    );
  }
  const pool = await createDatabasePool(database.url, { maximumPoolSize: poolSize, secrets: secrets.hash });
  onShutdown('database pool', () => pool.end());
  // stored credential hashes are HMAC-SHA-256 with the pepper (issue #16, finding 8); in a
  // cluster the primary has made it (if needed) before forking. Every process checks it against
  // the database: a worker restarted after the file was lost must not make a new one and lock
  // every device out
  const pepper = await loadCredentialPepper(config);
  await assertPepperFitsDatabase(pool, pepper);
  if (single) {
    log(
      `credential hashes: HMAC-SHA-256 with the pepper from ${pepper.source}${
        pepper.created ? ' (generated now)' : ''
      }`,
    );
    // in a cluster the primary has done this once, before forking the workers
    await upgradeStoredSecrets(pool, secrets.hash, new Date().toISOString(), log);
  }
  let readPool: DatabasePool | undefined;
  if (config.REPLICA_DATABASE_URL !== undefined) {
    const replica = await createDatabasePool(config.REPLICA_DATABASE_URL, {
      maximumPoolSize: poolSize,
      secrets: secrets.hash,
    });
    readPool = replica;
    onShutdown('replica pool', () => replica.end());
    if (single || (role.kind === 'worker' && role.lead)) {
      log(`replica: ${redactUrl(config.REPLICA_DATABASE_URL)} serves replay, analytics, the feed and history pages`);
    }
  }
  if (single || (role.kind === 'worker' && role.lead)) {
    // instances must share one secrets key: each records its key's id and warns of another's
    const keyWatch = watchSecretsKey(pool, secrets.keyId, {
      warn: (message) => logger.warn(message),
      onError: (message, err) => logger.error({ err }, message),
    });
    onShutdown('secrets key record', () => keyWatch.stop());
    await keyWatch.ready;
  }
  if (single) await ensurePartitionsAhead(pool, new Date(), config.PARTITION_DAYS_AHEAD);
  // hourly: partitions ahead (keeps /readyz's "partitions ahead" true) and retention (issue #6)
  const maintenance = createMaintenanceJob(pool, {
    clock: () => new Date(),
    daysAhead: config.PARTITION_DAYS_AHEAD,
    retentionDays: config.RETENTION_DAYS,
    archiveDir: config.ARCHIVE_DIR,
    telemetry: { metricsDays: config.METRICS_RETENTION_DAYS, logsDays: config.LOGS_RETENTION_DAYS },
    intervalMs: HOUR_MS,
    log,
    onError: (message, err) => logger.error({ err }, message),
  });
  if (runsJobs) {
    maintenance.start();
    onShutdown('partition maintenance and retention', () => maintenance.stop());
  }
  const deps = createDeps(pool, {
    credentialPepper: pepper.pepper,
    authThrottle: {
      perAddress: config.AUTH_FAILURE_LIMIT_PER_ADDRESS,
      perKeyPrefix: config.AUTH_FAILURE_LIMIT_PER_KEY_PREFIX,
    },
    bodyLimitKb: config.BODY_LIMIT_KB,
    liveStreams: {
      maxStreams: config.SSE_MAX_STREAMS,
      maxStreamsPerToken: config.SSE_MAX_STREAMS_PER_TOKEN,
      recheckMs: config.SSE_CREDENTIAL_RECHECK,
    },
    logError: (message, err) => logger.error({ err }, message),
    webhookPolicy: { allowPrivate: config.WEBHOOK_ALLOW_PRIVATE },
    console: { sessionTtlMs: config.CONSOLE_SESSION_TTL, secureCookie: config.CONSOLE_SECURE_COOKIE },
    retentionDays: config.RETENTION_DAYS,
    logsBodyLimitKb: config.LOGS_BODY_LIMIT_KB,
    secrets,
    ...(readPool === undefined ? {} : { readPool }),
  });
  const metrics = createMetrics({
    pool,
    clock: deps.clock,
    ...(role.kind === 'worker'
      ? {
        // /metrics in any worker: the primary gathers every worker's registry and sums them
        worker: { index: role.index, exposition: async () => String(await role.ipc.request(METHODS.metrics, null)) },
      }
      : {}),
  });
  deps.store = instrumentStore(deps.store, metrics);
  if (role.kind === 'worker') shareMetrics(metrics.registry);
  // devices over MQTT (issue #18): the broker starts with the service (MQTT=off: none). In a
  // cluster the embedded broker lives in the lead worker only, with everything that publishes
  // into it; the other workers ask the lead to issue credentials. An external broker is
  // subscribed to by every worker (its shared subscription spreads the reports).
  if (config.MQTT) {
    if (role.kind === 'worker' && !role.lead && config.MQTT_URL === undefined) {
      const ipc = role.ipc;
      deps.mqtt = {
        issueCredentials: async (uuid, requestHost) =>
          (await ipc.request(METHODS.issueMqttCredentials, { uuid, requestHost })) as MqttCredentials | null,
        // the broker's connections are worker 1's to see
        mode: 'embedded',
      } satisfies MqttCredentialIssuer;
    } else {
      const mqtt = await startMqttTransport(config, {
        pool,
        store: deps.store,
        clock: deps.clock,
        registry: metrics.registry,
        secrets,
        hasher: deps.credentials,
        log: (level, message, err) => logger[level](err === undefined ? {} : { err }, message),
        ...(role.kind === 'worker' ? { workerIndex: role.index } : {}),
      });
      onShutdown('mqtt transport', () => mqtt.stop());
      deps.mqtt = mqtt; // the registration reply and the key exchange issue credentials through it
      if (role.kind === 'worker' && role.lead) {
        role.ipc.handle(METHODS.issueMqttCredentials, (payload) => {
          const { uuid, requestHost } = payload as { uuid: string; requestHost?: string };
          return mqtt.issueCredentials(uuid, requestHost);
        });
      }
      if (single || (role.kind === 'worker' && role.lead)) {
        log(`mqtt: ${mqtt.mode} broker ${mqtt.url}; devices are told ${mqtt.publicUrl()}`);
      }
    }
  }
  if (single) {
    // the token goes to a human at a terminal, never into collected logs (in a cluster: the primary's job)
    await bootstrapAdminToken(
      deps.adminTokens,
      config.DATA_DIR,
      (line) =>
        process.stdout.isTTY
          ? console.log(line)
          : logger.warn(`created admin token "bootstrap"; it is saved in ${config.DATA_DIR}/admin-token (not logged)`),
    );
  }
  const app = createApp(deps, {
    logger,
    logRequests: config.LOG_REQUESTS,
    metrics,
    partitionDaysAhead: config.PARTITION_DAYS_AHEAD,
    rateLimits: {
      reports: config.REPORT_RATE_LIMIT,
      registrations: config.REGISTER_RATE_LIMIT,
      deviceEvents: config.DEVICE_EVENTS_RATE_LIMIT,
      deviceLogs: config.LOGS_RATE_LIMIT,
    },
    requestTimeoutMs: config.REQUEST_TIMEOUT,
    trustedProxies: config.TRUSTED_PROXIES,
    ...(config.METRICS_TOKEN === undefined ? {} : { metricsToken: config.METRICS_TOKEN }),
  });
  const server: Server = await new Promise((resolve, reject) => {
    const s = createHttpServer(app, {
      headersTimeoutMs: config.HTTP_HEADERS_TIMEOUT,
      bodyTimeoutMs: config.HTTP_BODY_TIMEOUT,
      maxConnections: config.HTTP_MAX_CONNECTIONS,
    });
    s.listen(config.PORT, config.HOST, () => resolve(s));
    s.once('error', (error) => reject(new Error(`cannot listen on ${config.HOST}:${config.PORT}: ${error.message}`)));
  });
  httpServer = server;
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PORT;
  // in a cluster the primary says "listening on" once every worker listens
  log(
    single
      ? `listening on http://${config.HOST}:${port} (one process: WORKERS=${config.WORKERS})`
      : `worker ${role.index}: serving HTTP on port ${port}`,
  );
  if (!runsJobs) return port;
  const sweeperOptions = {
    pool,
    store: deps.store,
    clock: deps.clock,
    intervalMs: config.SWEEP_INTERVAL,
    onError: deps.logError,
  };
  const sweepers = [
    createReconciliationSweeper({ ...sweeperOptions, timeoutMs: config.RECONCILIATION_TIMEOUT }),
    createConnectivitySweeper({ ...sweeperOptions, timeoutMs: config.CONNECTIVITY_TIMEOUT }),
  ];
  for (const sweeper of sweepers) {
    sweeper.start();
    onShutdown('lifecycle sweeper', () => sweeper.stop());
  }
  if (config.REALTIME_JOBS) {
    const realtime = await startRealtimeJobs(
      pool,
      config,
      (level, message, err) => logger[level](err === undefined ? {} : { err }, message),
    );
    onShutdown('real-time jobs (webhooks, device_summary)', () => realtime.stop());
  }
  if (config.SNAPSHOT_EVERY > 0) {
    const snapshotter = createSnapshotter(pool, {
      every: config.SNAPSHOT_EVERY,
      intervalMs: config.SNAPSHOT_INTERVAL,
      log,
    });
    snapshotter.start();
    onShutdown('snapshotter', () => snapshotter.stop());
  }
  return port;
}

let httpServer: Server | null = null;
let startup: Promise<void> = Promise.resolve();

/** Closes the listening socket and idle keep-alive connections; resolves when the last request is done. */
function stopAccepting(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  return closed;
}

/** Stops accepting, finishes requests in flight (bounded), runs the stop hooks, exits. */
async function shutdown(signal: string, config: Config, logger: Logger): Promise<void> {
  if (processShutdown.draining) {
    logger.info({ signal }, 'already shutting down');
    return;
  }
  processShutdown.beginDraining();
  let closing = httpServer === null ? null : stopAccepting(httpServer);
  logger.info(
    { signal, timeout_ms: config.SHUTDOWN_TIMEOUT_MS },
    'shutting down: refusing new connections, finishing requests in flight',
  );
  // a signal while starting: let startup finish, so everything it starts has registered its stop hook
  if (!(await within(startup.catch(() => undefined), config.SHUTDOWN_TIMEOUT_MS)).done) {
    logger.warn('startup did not finish within the shutdown timeout; stopping what has started');
  }
  const server = httpServer;
  if (server !== null) {
    closing ??= stopAccepting(server);
    if (!(await within(closing, config.SHUTDOWN_TIMEOUT_MS)).done) {
      logger.warn(
        { timeout_ms: config.SHUTDOWN_TIMEOUT_MS },
        'requests still running after the shutdown timeout; closing their connections',
      );
      server.closeAllConnections();
      await within(closing, 1000);
    }
  }
  const outcomes = await processShutdown.run(config.SHUTDOWN_TIMEOUT_MS, (outcome) => {
    if (outcome.result === 'ok') logger.info({ hook: outcome.name }, `stopped ${outcome.name}`);
    else logger.error({ hook: outcome.name, err: outcome.error }, `stopping ${outcome.name}: ${outcome.result}`);
  });
  const clean = outcomes.every((outcome) => outcome.result === 'ok');
  logger.info(clean ? 'stopped' : 'stopped, with errors (see above)');
  process.exit(clean ? 0 : 1);
}

/**
 * Runs the service in this process until a signal: the whole service (`single`) or one
 * cluster worker. A worker tells the primary once it listens and has started everything.
 */
export function runService(config: Config, logger: Logger, role: ServiceRole): void {
  // SIGHUP: the terminal went away (the embedded PostgreSQL only reloads on it, so stop it here)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void shutdown(signal, config, logger));
  }
  // with the terminal gone, writes to it fail; that must not stop the shutdown half-way
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  const started = main(config, logger, role);
  startup = started.then(() => undefined);
  started.then((port) => {
    logger.info('started');
    if (role.kind === 'worker') role.ipc.ready(port);
  }, async (error: unknown) => {
    if (processShutdown.draining) return; // a signal came while starting: shutdown() exits
    logger.fatal({ err: error }, 'failed to start');
    await processShutdown.run(config.SHUTDOWN_TIMEOUT_MS); // stops what did start (the embedded server)
    process.exit(1);
  });
}
