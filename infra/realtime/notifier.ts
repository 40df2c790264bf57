// One LISTEN session per pool shared by every SSE stream of the process: subscribers are
// called on each `devicetrail_events` notification. The session opens with the first
// subscriber and closes with the last; a dropped session is reopened on the next `ensure()`.
import type { DatabasePool } from 'slonik';
import { poolUrl } from '../postgres/database-source.ts';
import { type DedicatedSession, openDedicatedSession } from '../postgres/dedicated-session.ts';
import { EVENTS_CHANNEL } from './feed.ts';

/** Wake-ups for new events. */
export type EventNotifier = {
  /** Calls `wake` on each notification until the returned function is called. */
  subscribe: (wake: () => void) => () => void;
  /** Reopens the session if it dropped (subscribers poll anyway, so this is best effort). */
  ensure: () => void;
};

function createEventNotifier(pool: DatabasePool): EventNotifier {
  const subscribers = new Set<() => void>();
  let session: DedicatedSession | null = null;
  let opening = false;

  const ensure = () => {
    if (session !== null || opening || subscribers.size === 0) return;
    opening = true;
    void openDedicatedSession(poolUrl(pool), {
      onNotification: () => {
        for (const wake of subscribers) wake();
      },
      onLost: () => {
        session = null;
      },
    }).then(async (opened) => {
      try {
        await opened.listen(EVENTS_CHANNEL);
      } catch (error) {
        await opened.close();
        throw error;
      }
      if (subscribers.size === 0) await opened.close();
      else session = opened;
    }).catch(() => undefined).finally(() => {
      opening = false;
    });
  };

  return {
    subscribe(wake) {
      subscribers.add(wake);
      ensure();
      return () => {
        subscribers.delete(wake);
        if (subscribers.size === 0 && session !== null) {
          const closing = session;
          session = null;
          void closing.close();
        }
      };
    },
    ensure,
  };
}

const notifiers = new WeakMap<DatabasePool, EventNotifier>();

/** The process's notifier for a pool. */
export function eventNotifier(pool: DatabasePool): EventNotifier {
  let notifier = notifiers.get(pool);
  if (notifier === undefined) {
    notifier = createEventNotifier(pool);
    notifiers.set(pool, notifier);
  }
  return notifier;
}
