// The reconciliation sweeper: fails every open reconciliation older than
// RECONCILIATION_TIMEOUT with reason `timeout`. Any number of instances may run it: the
// decision is made from the folded state inside the append's transaction, and the stream's
// compare-and-set lets exactly one of them (or a converging report) win; the losers retry,
// see the reconciliation closed and write nothing.
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { decide } from '../../domain/device/decide.ts';
import { handleCommand } from '../event-store/command-handler.ts';
import { deviceAdapter } from './device-store.ts';
import { createEventStore, type EventStore } from '../event-store/event-store.ts';
import { createSweeper, type Sweeper } from './sweeper.ts';

const uuidRow = z.object({ uuid: z.string() });

/** How the reconciliation sweeper runs. */
export type ReconciliationSweeperOptions = {
  pool: DatabasePool;
  store?: EventStore;
  clock: () => Date;
  timeoutMs: number;
  intervalMs: number;
  batchSize?: number;
  onError: (message: string, error: unknown) => void;
};

/** Creates the reconciliation sweeper. */
export function createReconciliationSweeper(options: ReconciliationSweeperOptions): Sweeper {
  const { pool, timeoutMs } = options;
  const store = options.store ?? createEventStore(pool);
  const batchSize = options.batchSize ?? 100;
  const metadata = { actor: { type: 'system' as const, id: 'reconciliation-sweeper' } };

  async function sweep(): Promise<number> {
    const now = options.clock().toISOString();
    const cutoff = new Date(Date.parse(now) - timeoutMs).toISOString();
    let after = '';
    let written = 0;
    for (;;) {
      const uuids = await pool.anyFirst(sql.type(uuidRow)`
        SELECT uuid FROM devices
         WHERE reconciliation_since <= ${cutoff}::timestamptz AND uuid > ${after}
         ORDER BY uuid LIMIT ${batchSize}`);
      for (const uuid of uuids) {
        try {
          const result = await handleCommand(
            pool,
            store,
            deviceAdapter,
            uuid,
            (state) => decide({ type: 'expire_reconciliation', now, timeout_ms: timeoutMs }, state),
            { metadata, source: 'system' },
          );
          written += result.events.length;
        } catch (error) {
          options.onError(`reconciliation sweeper: device ${uuid}`, error);
        }
      }
      if (uuids.length < batchSize) return written;
      after = uuids[uuids.length - 1]!;
    }
  }

  return createSweeper('reconciliation-sweeper', sweep, options);
}
