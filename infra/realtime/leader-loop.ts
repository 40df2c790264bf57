// The loop shared by EventListeners and continuous ProjectionBuilders: one process per name
// holds a session advisory lock on a dedicated connection and does the work; the others
// stand by, trying the lock every `lockPollMs`, and take over when the holder's session
// ends. The holder is woken by LISTEN/NOTIFY and also polls, in case a notification is lost.
import { type DedicatedSession, openDedicatedSession } from '../postgres/dedicated-session.ts';
import { type Backoff, retry } from '../retry.ts';

/** What one step of work found. */
export type StepResult = 'more' | 'idle' | 'held';

/** Log levels the realtime parts use. */
export type RealtimeLog = (level: 'info' | 'warn' | 'error', message: string, error?: unknown) => void;

/** Thrown by a step that finds another process took over (its checkpoint write was fenced). */
export class LostLeadershipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LostLeadershipError';
  }
}

/** The wait after a failed step or connection: 250 ms doubling to 30 s, back to 250 ms after a step succeeds. */
const ERROR_BACKOFF: Backoff = { baseMs: 250, maxMs: 30_000 };

/** How the loop runs. */
export type LeaderLoopOptions = {
  label: string;
  url: string;
  lockName: string;
  channels: readonly string[];
  pollIntervalMs: number;
  lockPollMs: number;
  log: RealtimeLog;
  /** Runs when the lock is taken, before the first step (e.g. claim the checkpoint). */
  onLeader: () => Promise<void>;
  /** One unit of work: 'more' → run again now, 'held' → soon, 'idle' → on wake-up or poll. */
  step: () => Promise<StepResult>;
  /** Sees each notification before the loop wakes (e.g. to note a redelivery request). */
  onNotification?: (channel: string, payload: string) => void;
  onStatus?: (status: 'leader' | 'standby' | 'stopped') => void;
};

/** A leader-elected work loop. */
export class LeaderLoop {
  readonly #options: LeaderLoopOptions;
  #session: DedicatedSession | null = null;
  #leader = false;
  #running = false;
  #announcedStandby = false;
  #loop: Promise<void> | null = null;
  #pendingWake = false;
  #wakeUp: (() => void) | null = null;

  constructor(options: LeaderLoopOptions) {
    this.#options = options;
  }

  /** True while this process holds the lock. */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#running;
  }

  /** Connects and tries the lock once; throws when the database cannot be reached. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      await this.#connect();
      await this.#tryLead();
    } catch (error) {
      this.#running = false;
      await this.#dropSession();
      throw error;
    }
    this.#loop = this.#run();
  }

  /** Stops after the current step; releases the lock and the connection. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#pendingWake = true;
    this.#wakeUp?.();
    await this.#loop;
    this.#loop = null;
    await this.#dropSession();
    this.#options.onStatus?.('stopped');
  }

  /** Runs the next step now (new events, a redelivery request). */
  wake(): void {
    this.#pendingWake = true;
    this.#wakeUp?.();
  }

  async #connect(): Promise<void> {
    const session = await openDedicatedSession(this.#options.url, {
      onNotification: (channel, payload) => {
        this.#options.onNotification?.(channel, payload);
        this.wake();
      },
      onLost: (error) => {
        if (this.#session !== session) return;
        this.#session = null;
        if (this.#leader) {
          this.#options.log(
            'warn',
            `${this.#options.label}: connection lost${error ? ` (${error.message})` : ''}; lock released, reconnecting`,
          );
        }
        this.#leader = false;
        this.wake();
      },
    });
    try {
      for (const channel of this.#options.channels) await session.listen(channel);
    } catch (error) {
      await session.close();
      throw error;
    }
    this.#session = session;
  }

  async #tryLead(): Promise<void> {
    const session = this.#session;
    if (session === null || this.#leader) return;
    if (!(await session.tryLock(this.#options.lockName))) {
      if (!this.#announcedStandby) {
        this.#announcedStandby = true;
        this.#options.log('info', `${this.#options.label}: another process holds the lock; standing by`);
        this.#options.onStatus?.('standby');
      }
      return;
    }
    this.#leader = true;
    try {
      await this.#options.onLeader();
    } catch (error) {
      this.#leader = false;
      await this.#dropSession();
      throw error;
    }
    this.#announcedStandby = false;
    this.#options.log('info', `${this.#options.label}: lock taken; processing`);
    this.#options.onStatus?.('leader');
  }

  async #dropSession(): Promise<void> {
    const session = this.#session;
    this.#session = null;
    this.#leader = false;
    // closing the session releases its session lock
    if (session !== null) await session.close();
  }

  #sleep(ms: number, wakeable: boolean): Promise<void> {
    if (!this.#running) return Promise.resolve();
    if (wakeable && this.#pendingWake) {
      this.#pendingWake = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeUp = () => {
        if (wakeable || !this.#running) {
          this.#pendingWake = false;
          done();
        }
      };
    });
  }

  async #run(): Promise<void> {
    const { pollIntervalMs, log, label } = this.#options;
    let heldDelay = 20;
    while (this.#running) {
      let result: StepResult;
      try {
        // the error wait is the loop's own sleep: stop() ends it, notifications do not
        result = await retry(() => this.#turn(), {
          delay: ERROR_BACKOFF,
          shouldRetry: (error) => this.#running && !(error instanceof LostLeadershipError),
          wait: (ms) => this.#sleep(ms, false),
          onRetry: async (error, _attempt, ms) => {
            log('error', `${label}: ${(error as Error).message ?? String(error)}; retrying in ${ms} ms`, error);
            if (this.#session !== null && !this.#session.alive) await this.#dropSession();
          },
        });
      } catch (error) {
        if (!this.#running) break;
        // shouldRetry refuses, while running, only a LostLeadershipError
        log('warn', `${label}: ${(error as Error).message}`);
        await this.#dropSession();
        continue;
      }
      if (result === 'more') {
        heldDelay = 20;
      } else if (result === 'held') {
        await this.#sleep(heldDelay, true);
        heldDelay = Math.min(heldDelay * 2, pollIntervalMs);
      } else {
        heldDelay = 20;
        await this.#sleep(pollIntervalMs, true);
      }
    }
  }

  /** Connects and takes the lock when needed (standing by until it is free), then runs one step. */
  async #turn(): Promise<StepResult> {
    while (this.#running) {
      if (this.#session === null) await this.#connect();
      if (!this.#leader) await this.#tryLead();
      if (this.#leader) {
        this.#pendingWake = false;
        return this.#options.step();
      }
      await this.#sleep(this.#options.lockPollMs, false);
    }
    return 'idle'; // stopped while standing by: the loop ends
  }
}
