// Graceful shutdown: a registry of stop hooks (listeners, jobs, pools, servers) run once,
// newest first, each bounded in time, so whatever starts last stops first.

/** A stop hook: stops something started earlier. */
export type ShutdownHook = () => Promise<void> | void;

/** The outcome of one hook. */
export type HookOutcome = { name: string; result: 'ok' | 'failed' | 'timed_out'; error?: unknown };

/** A set of stop hooks and the draining flag readiness checks read. */
export type ShutdownRegistry = {
  /** Registers a hook; returns a function that unregisters it (for things stopped early). */
  on: (name: string, hook: ShutdownHook) => () => void;
  /** True once `beginDraining` or `run` was called: readiness reports "draining". */
  readonly draining: boolean;
  /** Marks the process as shutting down (before the HTTP server drains). */
  beginDraining: () => void;
  /** Runs every hook once, newest first, each within `timeoutMs`; later calls return the same promise. */
  run: (timeoutMs: number, log?: (outcome: HookOutcome) => void) => Promise<HookOutcome[]>;
};

/** Resolves to 'timed_out' when `work` does not settle within `ms`. */
export async function within<T>(work: Promise<T>, ms: number): Promise<{ done: true; value: T } | { done: false }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<{ done: false }>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
  });
  try {
    return await Promise.race([work.then((value) => ({ done: true as const, value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A fresh registry (tests use their own; the process uses `processShutdown`). */
export function createShutdownRegistry(): ShutdownRegistry {
  const hooks: { name: string; hook: ShutdownHook }[] = [];
  let running: Promise<HookOutcome[]> | null = null;
  let draining = false;
  return {
    on(name, hook) {
      const entry = { name, hook };
      hooks.push(entry);
      return () => {
        const i = hooks.indexOf(entry);
        if (i >= 0) hooks.splice(i, 1);
      };
    },
    get draining() {
      return draining;
    },
    beginDraining() {
      draining = true;
    },
    run(timeoutMs, log = () => {}) {
      draining = true;
      running ??= (async () => {
        const outcomes: HookOutcome[] = [];
        for (const { name, hook } of hooks.splice(0).reverse()) {
          let outcome: HookOutcome;
          try {
            const settled = await within(Promise.resolve().then(hook), timeoutMs);
            outcome = { name, result: settled.done ? 'ok' : 'timed_out' };
          } catch (error) {
            outcome = { name, result: 'failed', error };
          }
          log(outcome);
          outcomes.push(outcome);
        }
        return outcomes;
      })();
      return running;
    },
  };
}

/** The process-wide registry `app/main.ts` runs on SIGTERM/SIGINT. */
export const processShutdown: ShutdownRegistry = createShutdownRegistry();

/**
 * Registers a stop hook with the process: listeners, background jobs and anything else
 * that must stop before the database pool closes. Returns an unregister function.
 */
export function onShutdown(name: string, hook: ShutdownHook): () => void {
  return processShutdown.on(name, hook);
}

/** Koa middleware: while draining, responses ask the client to close its keep-alive connection. */
export function closeConnectionsWhenDraining(registry: Pick<ShutdownRegistry, 'draining'>) {
  return async function closeWhenDraining(
    ctx: { set: (name: string, value: string) => void },
    next: () => Promise<unknown>,
  ): Promise<void> {
    await next();
    if (registry.draining) ctx.set('Connection', 'close');
  };
}
