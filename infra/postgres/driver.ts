// slonik's pg driver with one repair: a connection whose server went away in the middle of
// a query leaves the pool.
//
// In slonik 47 (and upstream at the time of writing), when a connection breaks while a
// query runs, the driver's error handler starts destroying the client, waits for the active
// query, which rejects, and so never announces the destroy. The pool keeps the client in
// PENDING_DESTROY for ever: it is never used again, yet counts against maximumPoolSize. After
// a database crash or restart under load every busy connection becomes such a ghost; once
// they fill the pool, every request waits for a connection for ever, long after the database
// is back (found by test/reliability/outage.ts). Here, once that failed destroy has settled,
// the client announces its destroy itself, so the pool drops it and opens a new connection.
import type EventEmitter from 'node:events';
import { createPgDriverFactory } from '@slonik/pg-driver';
import type { DriverClient, DriverFactory } from 'slonik';
import { setImmediate } from 'node:timers';

/** The default pg driver factory, with broken clients released from the pool. */
export function createResilientPgDriverFactory(): DriverFactory {
  const base = createPgDriverFactory();
  return async (options) => {
    const driver = await base(options);
    return {
      createClient: async (): Promise<DriverClient> => {
        const client = await driver.createClient();
        let destroyAnnounced = false;
        // `on` hands back the client's own event emitter (EventEmitter#on returns `this`)
        const emitter = client.on('destroy', () => {
          destroyAnnounced = true;
        }) as unknown as EventEmitter;
        client.on('error', () => {
          // the driver's own handler has started the destroy; its outcome is known once the
          // failed query's rejection (queued by pg on the next tick) has been handled
          setImmediate(() => {
            if (client.state() !== 'PENDING_DESTROY') return;
            client.destroy().catch(() => {
              if (!destroyAnnounced && typeof emitter.emit === 'function') emitter.emit('destroy');
            });
          });
        });
        return client;
      },
    };
  };
}
