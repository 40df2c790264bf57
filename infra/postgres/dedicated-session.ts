// One PostgreSQL connection of its own, outside the slonik pool, for what a pool cannot
// do: LISTEN for notifications and hold a session-level advisory lock. When the connection
// drops, the lock is gone with it: `onLost` tells the owner.
import pg from 'pg';

/** Callbacks of a dedicated session. */
export type SessionEvents = {
  onNotification?: (channel: string, payload: string) => void;
  /** The connection ended or failed; any lock it held is released. Called at most once. */
  onLost?: (error: Error | null) => void;
};

/** A connected session; `close()` ends it (releasing its locks). */
export type DedicatedSession = {
  listen: (channel: string) => Promise<void>;
  /** Tries the session advisory lock for `name` (devicetrail's lock space); true when held. */
  tryLock: (name: string) => Promise<boolean>;
  unlock: (name: string) => Promise<void>;
  readonly alive: boolean;
  close: () => Promise<void>;
};

const LOCK_SPACE = 'devicetrail.leader';

/** Opens a dedicated session on `url`. */
export async function openDedicatedSession(url: string, events: SessionEvents = {}): Promise<DedicatedSession> {
  const client = new pg.Client({ connectionString: url, keepAlive: true, application_name: 'devicetrail-listener' });
  let alive = true;
  let closing = false;
  let opened = false;
  const lost = (error: Error | null) => {
    if (!alive) return;
    alive = false;
    // while connecting, the failure reaches the caller as the rejection of this function; its
    // onLost may not even see the session yet (a server shutting down ends the connection
    // during its startup, test/reliability/outage.ts)
    if (!closing && opened) events.onLost?.(error);
  };
  // An 'error' without a listener would crash the process: a dropped session is expected.
  client.on('error', (error) => lost(error));
  client.on('end', () => lost(null));
  client.on('notification', (message) => events.onNotification?.(message.channel, message.payload ?? ''));
  try {
    await client.connect();
  } catch (error) {
    alive = false;
    closing = true;
    await client.end().catch(() => undefined);
    throw error;
  }
  opened = true;
  if (!alive) {
    await client.end().catch(() => undefined);
    throw new Error('the database connection ended while it was being opened');
  }
  return {
    async listen(channel) {
      await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
    },
    async tryLock(name) {
      const result = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock(hashtext($1), hashtext($2)) AS locked',
        [LOCK_SPACE, name],
      );
      return result.rows[0]?.locked === true;
    },
    async unlock(name) {
      await client.query('SELECT pg_advisory_unlock(hashtext($1), hashtext($2))', [LOCK_SPACE, name]);
    },
    get alive() {
      return alive;
    },
    async close() {
      closing = true;
      alive = false;
      await client.end().catch(() => undefined);
    },
  };
}
