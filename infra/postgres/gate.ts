// A gate in front of the slonik pool: at most `size` operations (queries, transactions,
// connect routines) hold a connection at once; the rest wait in this gate's queue, each at
// most `waitMs`, and then fail with a ConnectionError (the API answers 503).
//
// Why not let slonik queue them: slonik 47's pool hands a waiting client a connection only
// when another connection is released or destroyed. When the database goes away, the pool's
// connections are destroyed one by one, each destroy serving one waiter; waiters beyond that
// number are never served nor failed, and wait until the database is back and some later
// request frees a connection (found by test/reliability/outage.ts: under load, a stopped
// database held requests for the whole outage instead of failing them). With the gate, slonik
// never has more callers than connections, and a released slot goes to the next waiter at once.
import { ConnectionError, type DatabasePool } from 'slonik';

/** The pool methods that take a connection for their duration. */
const GATED = new Set([
  'any',
  'anyFirst',
  'exists',
  'many',
  'manyFirst',
  'maybeOne',
  'maybeOneFirst',
  'one',
  'oneFirst',
  'query',
  'stream',
  'transaction',
  'connect',
]);

type Waiter = { resolve: () => void; reject: (error: Error) => void; timer: ReturnType<typeof setTimeout> };

/** `pool`, with at most `size` operations at once and a bounded wait for a slot. */
export function gatePool(pool: DatabasePool, size: number, waitMs: number): DatabasePool {
  let active = 0;
  const waiting: Waiter[] = [];

  function enter(): Promise<void> {
    if (active < size) {
      active += 1;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          waiting.splice(waiting.indexOf(waiter), 1);
          reject(new ConnectionError(`no database connection free within ${waitMs} ms (all ${size} in use)`));
        }, waitMs),
      };
      waiting.push(waiter);
    });
  }

  function leave(): void {
    const next = waiting.shift();
    if (next === undefined) {
      active -= 1;
      return;
    }
    clearTimeout(next.timer);
    next.resolve(); // the slot passes straight on
  }

  const gated = (method: (...args: unknown[]) => Promise<unknown>) => async (...args: unknown[]) => {
    await enter();
    try {
      return await method.apply(pool, args);
    } finally {
      leave();
    }
  };

  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(pool, {
    get(target, property) {
      if (property === 'state') {
        // the gate's queue is where callers wait now: report it as slonik's waiting clients
        return () => ({ ...target.state(), waitingClients: target.state().waitingClients + waiting.length });
      }
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (!wrapped.has(property)) {
        const fn = value as (...args: unknown[]) => Promise<unknown>;
        wrapped.set(property, GATED.has(String(property)) ? gated(fn) : fn.bind(target));
      }
      return wrapped.get(property);
    },
  });
}
