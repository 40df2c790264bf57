// A background sweep on a timer: runs once at start, then every `intervalMs` after the
// previous run ended (runs never overlap). `runOnce` sweeps now; tests call it with their
// own clock instead of waiting. The device sweepers share one paging loop over `devices`.
import { type DatabasePool, type FragmentSqlToken, sql } from 'slonik';
import { z } from 'zod';
import type { EventMetadata } from '../../domain/recorded-event.ts';
import { createEventStore, type EventStore } from '../event-store/event-store.ts';

const uuidRow = z.object({ uuid: z.string() });

/** A periodic job. */
export type Sweeper = {
  readonly name: string;
  /** Sweeps now; resolves to the number of events written. */
  runOnce: () => Promise<number>;
  start: () => void;
  /** Stops the timer and waits for a run in progress. */
  stop: () => Promise<void>;
};

/** Wraps a sweep function in a timer. Errors go to `onError`; the next run still happens. */
export function createSweeper(
  name: string,
  sweep: () => Promise<number>,
  options: { intervalMs: number; onError: (message: string, error: unknown) => void },
): Sweeper {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let inFlight: Promise<void> | null = null;
  let started = false;

  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      timer = null;
      inFlight = sweep().then(() => undefined, (error: unknown) => options.onError(`${name}: sweep failed`, error))
        .finally(() => {
          inFlight = null;
          if (started) schedule(options.intervalMs);
        });
    }, delayMs);
    // the HTTP server keeps the process alive, not the sweeper
    timer.unref();
  };

  return {
    name,
    runOnce: sweep,
    start() {
      if (started) return;
      started = true;
      schedule(0);
    },
    async stop() {
      started = false;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      await inFlight;
    },
  };
}

/** How a device sweeper runs. */
export type DeviceSweeperOptions = {
  pool: DatabasePool;
  store?: EventStore;
  clock: () => Date;
  timeoutMs: number;
  intervalMs: number;
  batchSize?: number;
  onError: (message: string, error: unknown) => void;
};

/** What a device sweeper's run gives each device it visits. */
export type DeviceSweep = { now: string; store: EventStore; metadata: EventMetadata };

/**
 * A sweeper over devices: each run reads the devices `due(cutoff)` selects (cutoff: now −
 * timeoutMs) a page at a time in uuid order, and hands each to `sweepDevice`, which returns the
 * events it wrote. A device that fails goes to onError; the run goes on.
 */
export function createDeviceSweeper(
  name: string,
  options: DeviceSweeperOptions,
  due: (cutoff: string) => FragmentSqlToken,
  sweepDevice: (uuid: string, sweep: DeviceSweep) => Promise<number>,
): Sweeper {
  const { pool, timeoutMs } = options;
  const store = options.store ?? createEventStore(pool);
  const batchSize = options.batchSize ?? 100;
  const metadata = { actor: { type: 'system' as const, id: name } };

  async function sweep(): Promise<number> {
    const now = options.clock().toISOString();
    const cutoff = new Date(Date.parse(now) - timeoutMs).toISOString();
    let after = '';
    let written = 0;
    for (;;) {
      const uuids = await pool.anyFirst(sql.type(uuidRow)`
        SELECT uuid FROM devices WHERE ${due(cutoff)} AND uuid > ${after} ORDER BY uuid LIMIT ${batchSize}`);
      for (const uuid of uuids) {
        try {
          written += await sweepDevice(uuid, { now, store, metadata });
        } catch (error) {
          options.onError(`${name}: device ${uuid}`, error);
        }
      }
      if (uuids.length < batchSize) return written;
      after = uuids[uuids.length - 1]!;
    }
  }

  return createSweeper(name, sweep, options);
}
