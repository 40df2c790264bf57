// The one retry helper: the backoff delay (exponential, capped, optional jitter) and a runner
// that calls a function again after a failure. Every retry loop uses it: listener handlers
// (infra/realtime/event-listener.ts), the leader loop's and the webhook worker's error waits,
// webhook delivery schedules (persisted, so only the delay) and handleCommand's conflicts.
// Our own rather than p-retry: the loops need a first attempt that runs whatever the signal,
// a wait that their own wake-ups may end early, and a retry at once with no timer.
import { setTimeout as sleep } from 'node:timers/promises';

/** Exponential backoff: `baseMs` after the first failure, doubling each time up to `maxMs`. */
export type Backoff = {
  baseMs: number;
  maxMs: number;
  /** Spreads each delay by ± this fraction, rounded (0.2 → 80 % to 120 %); none by default. */
  jitter?: number;
  /** The jitter's random source in [0, 1) (default Math.random). */
  random?: () => number;
};

/** The delay after failed attempt `attempt` (1-based). */
export function backoffDelay(attempt: number, backoff: Backoff): number {
  const raw = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attempt - 1));
  const jitter = backoff.jitter ?? 0;
  if (jitter === 0) return raw;
  return Math.round(raw * (1 - jitter + 2 * jitter * (backoff.random ?? Math.random)()));
}

/** How `retry` retries; every option has a default. */
export type RetryOptions = {
  /** Attempts in all, the first included (default Infinity: until success, refusal or the signal). */
  attempts?: number;
  /** Whether this failure is worth another attempt (default: every failure is). */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** The wait after failed attempt `attempt`: a Backoff, or a function of the attempt (default: none, retry at once). */
  delay?: Backoff | ((attempt: number) => number);
  /** Ends a wait early and stops the retries (RetryAbortedError); the first attempt runs regardless. */
  signal?: AbortSignal;
  /** Told of each failure that will be retried, before the wait (awaited): log it, reset a connection. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => unknown;
  /** How to wait (default: a timer the signal ends early); a loop may pass its own wake-able sleep. */
  wait?: (ms: number, signal: AbortSignal | undefined) => Promise<unknown>;
};

/** The signal stopped `retry` between attempts; `cause` is the last failure. */
export class RetryAbortedError extends Error {
  constructor(cause: unknown) {
    super('retry stopped by its signal', { cause });
    this.name = 'RetryAbortedError';
  }
}

const timer = (ms: number, signal: AbortSignal | undefined) => sleep(ms, undefined, signal ? { signal } : {});

/**
 * Calls `fn` (with the attempt number, 1-based) until it resolves. Rethrows the last failure
 * when the attempts are spent or `shouldRetry` says no; throws RetryAbortedError when the
 * signal fires before the next attempt.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const { attempts = Infinity, shouldRetry, delay, signal, onRetry, wait = timer } = options;
  for (let attempt = 1;; attempt += 1) {
    let failure: unknown;
    try {
      return await fn(attempt);
    } catch (error) {
      failure = error;
    }
    if (attempt >= attempts || (shouldRetry !== undefined && !shouldRetry(failure, attempt))) throw failure;
    const ms = delay === undefined ? 0 : typeof delay === 'function' ? delay(attempt) : backoffDelay(attempt, delay);
    await onRetry?.(failure, attempt, ms);
    if (ms > 0) {
      try {
        await wait(ms, signal);
      } catch (error) {
        if (signal?.aborted) throw new RetryAbortedError(failure);
        throw error;
      }
    }
    if (signal?.aborted) throw new RetryAbortedError(failure);
  }
}
