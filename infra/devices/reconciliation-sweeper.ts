// The reconciliation sweeper: fails every open reconciliation older than
// RECONCILIATION_TIMEOUT with reason `timeout`. Any number of instances may run it: the
// decision is made from the folded state inside the append's transaction, and the stream's
// compare-and-set lets exactly one of them (or a converging report) win; the losers retry,
// see the reconciliation closed and write nothing.
import { sql } from 'slonik';
import { decide } from '../../domain/device/decide.ts';
import { handleCommand } from '../event-store/command-handler.ts';
import { deviceAdapter } from './device-store.ts';
import { createDeviceSweeper, type DeviceSweeperOptions, type Sweeper } from './sweeper.ts';

/** How the reconciliation sweeper runs. */
export type ReconciliationSweeperOptions = DeviceSweeperOptions;

/** Creates the reconciliation sweeper. */
export function createReconciliationSweeper(options: ReconciliationSweeperOptions): Sweeper {
  const { pool, timeoutMs } = options;
  return createDeviceSweeper(
    'reconciliation-sweeper',
    options,
    (cutoff) => sql.fragment`reconciliation_since <= ${cutoff}::timestamptz`,
    async (uuid, { now, store, metadata }) => {
      const result = await handleCommand(
        pool,
        store,
        deviceAdapter,
        uuid,
        (state) => decide({ type: 'expire_reconciliation', now, timeout_ms: timeoutMs }, state),
        { metadata, source: 'system' },
      );
      return result.events.length;
    },
  );
}
