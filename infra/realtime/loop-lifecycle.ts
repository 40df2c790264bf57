// The start/stop lifecycle EventListener and a continuous ProjectionBuilder share: lease the
// database, run a LeaderLoop on it, and on stop end the loop, finish up and give the
// database back. A failed start releases what it took; concurrent start() calls share one start.
import type { DatabasePool } from 'slonik';
import { type DatabaseLease, type DatabaseOption, leaseDatabase, poolUrl } from '../postgres/database-source.ts';
import { LeaderLoop, type LeaderLoopOptions, type RealtimeLog } from './leader-loop.ts';

/** The loop settings both option types carry (each has a default). */
export type LoopSettings = DatabaseOption & {
  pollIntervalMs?: number;
  lockPollMs?: number;
  log?: RealtimeLog;
  onStatus?: (status: 'leader' | 'standby' | 'stopped') => void;
};

/** The work a loop does, set up once the database is leased. */
export type LoopWork = Pick<LeaderLoopOptions, 'label' | 'lockName' | 'channels' | 'onNotification' | 'step'> & {
  onLeader?: () => Promise<void>;
};

/** Default log: warnings and errors to stderr. */
const stderrLog: RealtimeLog = (level, message) => {
  if (level !== 'info') console.error(`[devicetrail] ${message}`);
};

/** One leased database and one LeaderLoop, from start() to stop(). */
export class LoopLifecycle {
  /** Who runs the loop, for error messages (`EventListener "alerts"`). */
  readonly #owner: string;
  readonly #settings: LoopSettings;
  #lease: DatabaseLease | null = null;
  #loop: LeaderLoop | null = null;
  #starting: Promise<void> | null = null;
  #stopping = new AbortController();

  constructor(owner: string, settings: LoopSettings) {
    this.#owner = owner;
    this.#settings = settings;
  }

  /** The log the settings name, stderr by default. */
  get log(): RealtimeLog {
    return this.#settings.log ?? stderrLog;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#loop?.running ?? false;
  }

  /** True while this process holds the loop's lock. */
  get isLeader(): boolean {
    return this.#loop?.isLeader ?? false;
  }

  /** Aborted when stop() begins: a wait inside a step (a retry's backoff) ends early. */
  get stopSignal(): AbortSignal {
    return this.#stopping.signal;
  }

  /** Leases the database, runs `setup` on it, and starts the loop; resolves once leading or standing by. */
  start(setup: (pool: DatabasePool) => LoopWork | Promise<LoopWork>): Promise<void> {
    this.#starting ??= this.#start(setup).finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async #start(setup: (pool: DatabasePool) => LoopWork | Promise<LoopWork>): Promise<void> {
    if (this.#loop !== null) return;
    const lease = await leaseDatabase(this.#settings, this.#owner);
    try {
      const work = await setup(lease.pool);
      this.#stopping = new AbortController();
      this.#lease = lease;
      this.#loop = new LeaderLoop({
        onLeader: async () => {},
        ...work,
        url: poolUrl(lease.pool),
        pollIntervalMs: this.#settings.pollIntervalMs ?? 1000,
        lockPollMs: this.#settings.lockPollMs ?? 1000,
        log: this.log,
        ...(this.#settings.onStatus ? { onStatus: this.#settings.onStatus } : {}),
      });
      await this.#loop.start();
    } catch (error) {
      this.#loop = null;
      this.#lease = null;
      await lease.release();
      throw error;
    }
  }

  /** Ends the loop after its step in hand, runs `finish` on the pool (release a checkpoint), releases the database. */
  async stop(finish?: (pool: DatabasePool) => Promise<unknown>): Promise<void> {
    await this.#starting?.catch(() => undefined);
    const loop = this.#loop;
    const lease = this.#lease;
    if (loop === null || lease === null) return;
    const stopped = loop.stop();
    this.#stopping.abort();
    await stopped;
    await finish?.(lease.pool);
    this.#loop = null;
    this.#lease = null;
    await lease.release();
  }

  /** Runs `fn` on the started loop's pool, or on a database leased for the call. */
  async withDatabase<T>(fn: (pool: DatabasePool) => Promise<T>): Promise<T> {
    if (this.#lease !== null) return fn(this.#lease.pool);
    const lease = await leaseDatabase(this.#settings, this.#owner);
    try {
      return await fn(lease.pool);
    } finally {
      await lease.release();
    }
  }
}
