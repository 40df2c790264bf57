// The cluster primary (WORKERS > 1, issue #19): the process `npm start` runs when it uses
// every core. It serves no request itself. Once, before any worker exists, it opens the
// database (starting the embedded PostgreSQL when there is no DATABASE_URL), migrates, makes
// the partitions ahead and writes the bootstrap admin token; then it forks WORKERS workers
// (node:cluster; they share PORT: the primary accepts and hands connections out round-robin),
// each told the database URL and its index (DEVICETRAIL_WORKER).
//
// - Worker 1, the lead, runs the background jobs (sweepers, listeners, projections,
//   retention, partition maintenance, webhook delivery, snapshotter) and the embedded MQTT
//   broker; the others serve HTTP only. The jobs are safe in several processes anyway
//   (advisory locks, compare-and-set, SKIP LOCKED: docs/SCALING.md), which is what lets
//   several instances run; one per cluster saves connections and CPU.
// - /metrics: the worker that gets the request asks the primary, which gathers every worker's
//   registry over IPC (prom-client's AggregatorRegistry) and answers the sum.
// - A worker that dies is forked again with the same index (logged), after a pause that
//   grows while it keeps dying; a worker that dies before all have started once fails the start.
// - SIGTERM/SIGINT/SIGHUP: each worker is sent SIGTERM and drains (app/service.ts); once all
//   have exited (bounded), the embedded PostgreSQL stops; exit 0 when every worker exited 0.
import cluster, { type Worker } from 'node:cluster';
import process from 'node:process';
import { AggregatorRegistry } from 'prom-client';
import { migrate } from '../../infra/postgres/migrate.ts';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { ensurePartitionsAhead } from '../../infra/event-store/partitions.ts';
import { createAdminTokens, createCredentialHasher } from '../../infra/devices/credentials.ts';
import { assertPepperFitsDatabase, loadCredentialPepper } from '../credential-pepper.ts';
import { bootstrapAdminToken } from '../bootstrap.ts';
import { upgradeStoredSecrets } from '../../infra/secrets/secret-values.ts';
import { secretHasherFor, SECRETS_KEY_FILE } from '../secrets-key.ts';
import type { Config } from '../config.ts';
import { openDatabase } from '../database-target.ts';
import type { Logger } from '../observability/logger.ts';
import { within } from '../shutdown.ts';
import { asMessage, createPendingCalls, METHODS, type ReplyMessage, type RequestMessage } from './ipc.ts';

/** The lead worker's index: it runs the background jobs and the embedded MQTT broker. */
export const LEAD_WORKER = 1;

/** One worker place: the process filling it now, and how often it died in a row. */
type Slot = { index: number; worker: Worker | null; ready: boolean; deaths: number; startedAt: number };

/** A worker's restart pause: 1 s after a quick death, doubling to 30 s; 0 after a long life. */
function restartDelay(slot: Slot): number {
  if (Date.now() - slot.startedAt > 60_000) slot.deaths = 0;
  slot.deaths += 1;
  return slot.deaths === 1 ? 0 : Math.min(30_000, 1000 * 2 ** (slot.deaths - 2));
}

/** Runs the primary until a signal; exits the process. */
export function runPrimary(config: Config, logger: Logger): void {
  const log = (message: string) => logger.info(message);
  const slots: Slot[] = Array.from(
    { length: config.WORKERS },
    (_, i) => ({ index: i + 1, worker: null, ready: false, deaths: 0, startedAt: 0 }),
  );
  const aggregator = new AggregatorRegistry();
  const forwarded = createPendingCalls();
  let databaseUrl = '';
  let stopDatabase: () => Promise<void> = async () => {};
  let allReady = false;
  let shuttingDown = false;
  let exitCode = 0;
  const workerExits = new Map<number, Promise<void>>();

  const leadWaiters: (() => void)[] = [];
  /** The lead worker once it is ready; rejects after `timeoutMs` without one. */
  async function leadReady(timeoutMs: number): Promise<Worker> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lead = slots[LEAD_WORKER - 1]!;
      if (lead.worker !== null && lead.ready && lead.worker.isConnected()) return lead.worker;
      const left = deadline - Date.now();
      if (left <= 0 || shuttingDown) {
        throw new Error('the lead worker (the MQTT broker) is not running; it is being started');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        leadWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  const slotOf = (worker: Worker) => slots.find((slot) => slot.worker === worker) ?? null;

  function fork(slot: Slot): void {
    slot.ready = false;
    slot.startedAt = Date.now();
    const worker = cluster.fork({ DEVICETRAIL_WORKER: String(slot.index), DATABASE_URL: databaseUrl });
    slot.worker = worker;
    workerExits.set(worker.id, new Promise((resolve) => worker.once('exit', () => resolve())));
    worker.on('message', (raw: unknown) => void onMessage(slot, worker, raw));
  }

  const reply = (worker: Worker, message: ReplyMessage) => {
    if (worker.isConnected()) worker.send(message);
  };

  async function answer(worker: Worker, request: RequestMessage): Promise<void> {
    try {
      let value: unknown;
      if (request.method === METHODS.metrics) {
        value = await aggregator.clusterMetrics();
      } else if (request.method === METHODS.issueMqttCredentials) {
        // the lead may be starting (or restarting): wait for it, briefly
        const lead = await leadReady(10_000);
        const call = forwarded.open(request.method, 10_000);
        lead.send({ ...request, id: call.id } satisfies RequestMessage);
        value = await call.reply;
      } else {
        throw new Error(`unknown request ${request.method}`);
      }
      reply(worker, { type: 'devicetrail:reply', id: request.id, ok: true, value });
    } catch (error) {
      reply(worker, { type: 'devicetrail:reply', id: request.id, ok: false, error: (error as Error).message });
    }
  }

  function onMessage(slot: Slot, worker: Worker, raw: unknown): void {
    const message = asMessage(raw);
    if (message === null) return;
    if (message.type === 'devicetrail:request') {
      void answer(worker, message);
    } else if (message.type === 'devicetrail:reply') {
      forwarded.settle(message); // the lead's answer to a forwarded call
    } else if (message.type === 'devicetrail:ready') {
      slot.ready = true;
      if (slot.index === LEAD_WORKER) { for (const wake of leadWaiters.splice(0)) wake(); }
      if (slot.deaths > 0 || allReady) log(`worker ${slot.index} (pid ${worker.process.pid}) is serving again`);
      if (!allReady && slots.every((s) => s.ready)) {
        allReady = true;
        log(`listening on http://${config.HOST}:${message.port} with ${slots.length} workers`);
        logger.info('started');
      }
    }
  }

  cluster.on('exit', (worker, code, signal) => {
    const slot = slotOf(worker);
    if (slot === null) return;
    slot.worker = null;
    slot.ready = false;
    if (slot.index === LEAD_WORKER) forwarded.failAll('the lead worker exited');
    if (shuttingDown) {
      if (code !== 0) exitCode = 1;
      log(`worker ${slot.index} (pid ${worker.process.pid}) exited (${code ?? signal})`);
      return;
    }
    if (!allReady) {
      logger.fatal(
        { worker: slot.index, pid: worker.process.pid, code, signal },
        `worker ${slot.index} exited (${code ?? signal}) before every worker had started`,
      );
      void shutdown('worker failed to start', 1);
      return;
    }
    const delay = restartDelay(slot);
    logger.error(
      { worker: slot.index, pid: worker.process.pid, code, signal, restart_in_ms: delay },
      `worker ${slot.index} (pid ${worker.process.pid}) died (${code ?? signal}); restarting it${
        delay > 0 ? ` in ${delay} ms` : ''
      }`,
    );
    setTimeout(() => {
      if (!shuttingDown) fork(slot);
    }, delay).unref();
  });

  async function prepare(): Promise<void> {
    log(`starting ${slots.length} workers (WORKERS=${config.WORKERS}); the primary serves no request itself`);
    const database = await openDatabase(config, log);
    stopDatabase = () => database.stop();
    log(`database: ${database.description}`);
    const applied = await migrate(database.url);
    log(applied.length === 0 ? 'migrations: up to date' : `migrations applied: ${applied.join(', ')}`);
    // the secrets key, created here once before any worker needs it (README "Secrets")
    const secrets = await secretHasherFor(config, log);
    log(
      `secrets key: ${
        config.SECRETS_KEY === undefined ? `${config.DATA_DIR}/${SECRETS_KEY_FILE}` : 'SECRETS_KEY'
      } (id ${secrets.keyId})`,
    );
    const pool = await createDatabasePool(database.url, { maximumPoolSize: 2, secrets: secrets.hash });
    try {
      await ensurePartitionsAhead(pool, new Date(), config.PARTITION_DAYS_AHEAD);
      await upgradeStoredSecrets(pool, secrets.hash, new Date().toISOString(), log);
      // the credential pepper, made here once before the workers read it (issue #16, finding 8)
      const pepper = await loadCredentialPepper(config);
      await assertPepperFitsDatabase(pool, pepper);
      log(
        `credential hashes: HMAC-SHA-256 with the pepper from ${pepper.source}${
          pepper.created ? ' (generated now)' : ''
        }`,
      );
      const credentials = createCredentialHasher(pepper.pepper);
      // the token goes to a human at a terminal, never into collected logs
      await bootstrapAdminToken(
        createAdminTokens(pool, credentials),
        config.DATA_DIR,
        (line) =>
          process.stdout.isTTY ? console.log(line) : logger.warn(
            `created admin token "bootstrap"; it is saved in ${config.DATA_DIR}/admin-token (not logged)`,
          ),
      );
    } finally {
      await pool.end();
    }
    databaseUrl = database.url;
    // a worker's stdout and stderr are the primary's: its JSON lines carry "worker": N
    for (const slot of slots) fork(slot);
  }

  let startup: Promise<void> = Promise.resolve();

  async function shutdown(reason: string, code: number): Promise<void> {
    if (shuttingDown) {
      logger.info({ signal: reason }, 'already shutting down');
      return;
    }
    shuttingDown = true;
    if (code !== 0) exitCode = code;
    logger.info(
      { signal: reason, timeout_ms: config.SHUTDOWN_TIMEOUT_MS },
      `shutting down: every worker drains its requests and stops`,
    );
    // a signal while the database starts: let it finish, so it can be stopped
    await within(startup.catch(() => undefined), config.SHUTDOWN_TIMEOUT_MS);
    const live = slots.flatMap((slot) => (slot.worker === null ? [] : [slot.worker]));
    for (const worker of live) worker.process.kill('SIGTERM');
    // each worker bounds its own drain and stop hooks by SHUTDOWN_TIMEOUT_MS; leave it room
    const exits = Promise.all(live.map((worker) => workerExits.get(worker.id)));
    if (!(await within(exits, 3 * config.SHUTDOWN_TIMEOUT_MS + 5000)).done) {
      logger.error('workers still running after the shutdown timeout; killing them');
      exitCode = 1;
      for (const worker of live) if (worker.isDead() === false) worker.process.kill('SIGKILL');
      await within(exits, 5000);
    }
    try {
      await within(stopDatabase(), config.SHUTDOWN_TIMEOUT_MS);
      logger.info({ hook: 'database server' }, 'stopped database server');
    } catch (error) {
      exitCode = 1;
      logger.error({ hook: 'database server', err: error }, 'stopping database server: failed');
    }
    logger.info(exitCode === 0 ? 'stopped' : 'stopped, with errors (see above)');
    process.exit(exitCode);
  }

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void shutdown(signal, 0));
  }
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  startup = prepare();
  startup.catch(async (error: unknown) => {
    if (shuttingDown) return;
    logger.fatal({ err: error }, 'failed to start');
    shuttingDown = true;
    await within(stopDatabase(), config.SHUTDOWN_TIMEOUT_MS).catch(() => undefined);
    process.exit(1);
  });
}
