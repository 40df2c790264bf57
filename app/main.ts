// The process entry: config → logger → database → migrations → partitions → HTTP on PORT.
// SIGTERM/SIGINT/SIGHUP: stop accepting, finish in-flight requests (bounded by SHUTDOWN_TIMEOUT_MS),
// run the stop hooks newest first (jobs and listeners, then the pool, then the embedded
// PostgreSQL; see app/shutdown.ts), exit 0.
import type { Server } from 'node:http';
import { createConnectivitySweeper } from '../infra/devices/connectivity-sweeper.ts';
import { createDatabasePool } from '../infra/postgres/pool.ts';
import { createMaintenanceJob } from '../infra/retention/maintenance-job.ts';
import { migrate } from '../infra/postgres/migrate.ts';
import { ensurePartitionsAhead } from '../infra/event-store/partitions.ts';
import { createReconciliationSweeper } from '../infra/devices/reconciliation-sweeper.ts';
import { createSnapshotter } from '../infra/replay/snapshotter.ts';
import { bootstrapAdminToken } from './bootstrap.ts';
import { assertPepperFitsDatabase, loadCredentialPepper } from './credential-pepper.ts';
import { type Config, ConfigError, loadConfig } from './config.ts';
import { openDatabase } from './database-target.ts';
import { createHttpServer } from './http/server.ts';
import { createApp } from './http/create-app.ts';
import { createDeps } from './http/deps.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { createMetrics, instrumentStore } from './observability/metrics.ts';
import { startMqttTransport } from './mqtt/transport.ts';
import { startRealtimeJobs } from './realtime-jobs.ts';
import { onShutdown, processShutdown, within } from './shutdown.ts';

const HOUR_MS = 3_600_000;

async function main(config: Config, logger: Logger): Promise<void> {
  const log = (message: string) => logger.info(message);
  const database = await openDatabase(config, log);
  onShutdown('database server', () => database.stop()); // a no-op unless embedded
  log(`database: ${database.description}`);
  const applied = await migrate(database.url);
  log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`);
  const pool = await createDatabasePool(database.url, { maximumPoolSize: config.DB_POOL_SIZE });
  onShutdown('database pool', () => pool.end());
  await ensurePartitionsAhead(pool, new Date(), config.PARTITION_DAYS_AHEAD);
  const pepper = await loadCredentialPepper(config);
  await assertPepperFitsDatabase(pool, pepper);
  log(
    `credential hashes: HMAC-SHA-256 with the pepper from ${pepper.source}${pepper.created ? ' (generated now)' : ''}`,
  );
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
  maintenance.start();
  onShutdown('partition maintenance and retention', () => maintenance.stop());
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
  });
  const metrics = createMetrics({ pool, clock: deps.clock });
  deps.store = instrumentStore(deps.store, metrics);
  // devices over MQTT (issue #18): the broker starts with the service (MQTT=off: none)
  if (config.MQTT) {
    const mqtt = await startMqttTransport(config, {
      pool,
      store: deps.store,
      clock: deps.clock,
      registry: metrics.registry,
      hasher: deps.credentials,
      log: (level, message, err) => logger[level](err === undefined ? {} : { err }, message),
    });
    onShutdown('mqtt transport', () => mqtt.stop());
    deps.mqtt = mqtt; // the registration reply and the key exchange issue credentials through it
    log(`mqtt: ${mqtt.mode} broker ${mqtt.url}; devices are told ${mqtt.publicUrl()}`);
  }
  // the token goes to a human at a terminal, never into collected logs
  await bootstrapAdminToken(
    deps.adminTokens,
    config.DATA_DIR,
    (line) =>
      process.stdout.isTTY
        ? console.log(line)
        : logger.warn(`created admin token "bootstrap"; it is saved in ${config.DATA_DIR}/admin-token (not logged)`),
  );
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
  log(
    `listening on http://${config.HOST}:${
      typeof address === 'object' && address !== null ? address.port : config.PORT
    }`,
  );
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

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  console.error(`[devicetrail] ${error instanceof ConfigError ? error.message : String(error)}`);
  process.exit(1);
}
const logger = createLogger({ level: config.LOG_LEVEL, format: config.LOG_FORMAT, nodeEnv: config.NODE_ENV });
// SIGHUP: the terminal went away (the embedded PostgreSQL only reloads on it, so stop it here)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => void shutdown(signal, config, logger));
}
// with the terminal gone, writes to it fail; that must not stop the shutdown half-way
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
startup = main(config, logger);
startup.then(() => logger.info('started'), async (error: unknown) => {
  if (processShutdown.draining) return; // a signal came while starting: shutdown() exits
  logger.fatal({ err: error }, 'failed to start');
  await processShutdown.run(config.SHUTDOWN_TIMEOUT_MS); // stops what did start (the embedded server)
  process.exit(1);
});
