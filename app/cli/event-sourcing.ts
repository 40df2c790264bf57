// The seed's `services/event-sourcing` for scripts in this project: EventListener and
// ProjectionBuilder that, when given no `pool`, use the service's database — DATABASE_URL,
// else the embedded server under DATA_DIR (reused when the service runs, else started for
// as long as a listener runs or a projection call lasts). So the seed's snippets run as written:
//
//   import { EventListener } from '../app/cli/event-sourcing.ts';   // from a script in scripts/
//   const listener = new EventListener();
import type { DatabaseLease } from '../../infra/postgres/database-source.ts';
import { EventListener as PoolEventListener, type EventListenerOptions } from '../../infra/realtime/event-listener.ts';
import {
  ProjectionBuilder as PoolProjectionBuilder,
  type ProjectionOptions,
} from '../../infra/realtime/projection-builder.ts';
import { type CliDatabase, openCliDatabase } from './cli-database.ts';

export type { EventHandler, EventListenerOptions } from '../../infra/realtime/event-listener.ts';
export type { ProcessResult, ProjectionHandler, ProjectionOptions } from '../../infra/realtime/projection-builder.ts';

let shared: Promise<CliDatabase> | null = null;
let users = 0;

/** Leases the service's database; the last release closes it (and stops an embedded server this process started). */
async function serviceDatabase(): Promise<DatabaseLease> {
  users += 1;
  let database: CliDatabase;
  try {
    shared ??= openCliDatabase();
    database = await shared;
  } catch (error) {
    users -= 1;
    shared = null;
    throw error;
  }
  let released = false;
  return {
    pool: database.pool,
    release: async () => {
      if (released) return;
      released = true;
      users -= 1;
      if (users === 0 && shared !== null) {
        shared = null;
        await database.close();
      }
    },
  };
}

const running = new Set<PoolEventListener>();
let signalsHooked = false;

/** Ctrl-C or SIGTERM stops the running listeners cleanly (checkpoint written, database released). */
function stopOnSignals(): void {
  if (signalsHooked) return;
  signalsHooked = true;
  const stopAll = (signal: string) => {
    console.error(`[devicetrail] ${signal}: stopping ${running.size} listener(s)`);
    void Promise.allSettled([...running].map((l) => l.stop())).then(() => process.exit(0));
  };
  process.once('SIGINT', () => stopAll('SIGINT'));
  process.once('SIGTERM', () => stopAll('SIGTERM'));
}

const withServiceDatabase = <T extends { pool?: unknown; database?: unknown }>(options: T): T =>
  options.pool !== undefined || options.database !== undefined ? options : { ...options, database: serviceDatabase };

/** EventListener on the service's database unless given `pool` (see infra/realtime/event-listener.ts). */
export class EventListener extends PoolEventListener {
  constructor(options: EventListenerOptions = {}) {
    super(withServiceDatabase(options));
  }

  /** Starts listening (see infra/realtime/event-listener.ts); Ctrl-C stops it cleanly. */
  override async start(): Promise<void> {
    await super.start();
    running.add(this);
    stopOnSignals();
  }

  /** Stops, writing the checkpoint and releasing the database. */
  override async stop(): Promise<void> {
    running.delete(this);
    await super.stop();
  }
}

/** ProjectionBuilder on the service's database unless given `pool` (see infra/realtime/projection-builder.ts). */
// deno-lint-ignore no-explicit-any -- the seed's projections read untyped state (state.deviceCount || 0)
export class ProjectionBuilder<S = Record<string, any>> extends PoolProjectionBuilder<S> {
  constructor(name: string, options: ProjectionOptions<S> = {}) {
    super(name, withServiceDatabase(options));
  }
}
