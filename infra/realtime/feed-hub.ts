// One reader of the feed per process, fanned out in memory to every live subscriber (the
// SSE streams): issue #16 found that a stream per database reader let 500 streams take
// one device's writes from 17/s to 1.5/s (every NOTIFY woke 500 readers, all in the pool).
//
// The hub follows the whole feed (unfiltered, gap-safe, per-aggregate version order: the
// same `readFeedBatch` as every reader) from the head it found when its first subscriber
// came. A subscriber keeps its own cursor S; the hub's cursor H only grows, and what it
// grows by is exactly the events it hands out (an unfiltered read moves past nothing else).
// So once every event H covers is covered by S, the events S still lacks are exactly the
// hub's later items not covered by S: the subscriber is then *live* and takes, in memory,
// the hub's items that match its filter and that S does not cover, its cursor becoming the
// union of S and the item's H. Until then (a resume from an older cursor) it *catches up*:
// it reads the feed with its own filter, as every stream used to, and goes live as soon as
// it covers H. A live subscriber that falls `inboxLimit` items behind (a slow client) is
// dropped back to catching up from its cursor, so it never holds the others back nor loses
// an event.
import { setImmediate } from 'node:timers';
import type { DatabasePool } from 'slonik';
import {
  type AheadEntry,
  comparePositions,
  type FeedCursor,
  type FeedFilter,
  type FeedItem,
  headCursor,
  KnownVersions,
  matchesFilter,
  readFeedBatch,
} from './feed.ts';
import { eventNotifier } from './notifier.ts';

/** What a hub reports about itself (tests, the streams benchmark). */
export type FeedHubStats = {
  subscribers: number;
  live: number;
  /** Reads by the shared reader since the hub was created. */
  hubReads: number;
  /** Reads by catching-up subscribers since the hub was created. */
  catchUpReads: number;
};

/** The shared reader. */
export type FeedHub = {
  /**
   * The cursor a subscriber without one starts from: the hub's own while it runs, else the
   * log's head. Taken before a stream answers, so that an event committed once the client
   * has its answer is after it (a generator's body runs only at its first `next()`: a head
   * read there skipped the events committed in between).
   */
  start: () => Promise<FeedCursor>;
  /**
   * Yields, batch by batch, the events after `start` that match `filter`, each with the
   * subscriber's cursor after it; returns when `signal` aborts or the process drains, throws
   * when a catching-up read fails.
   */
  follow: (start: FeedCursor, filter: FeedFilter | undefined, signal: AbortSignal) => AsyncGenerator<FeedItem[]>;
  stats: () => FeedHubStats;
};

/** Hub options; the defaults are the service's. */
export type FeedHubOptions = {
  /** Events per shared read (default 500). */
  batch?: number;
  /** Events per catching-up read (default 200). */
  catchUpBatch?: number;
  /** Poll when no NOTIFY came (default 1000 ms; 100 ms while committed events wait above the horizon). */
  pollMs?: number;
  /** Least time between two shared reads while events flow (default 100 ms), so that a read carries several. */
  coalesceMs?: number;
  /** Items a live subscriber may have waiting before it is dropped back to catching up (default 5000). */
  inboxLimit?: number;
  /** True once the process drains: subscribers then return. */
  draining?: () => boolean;
  /** A failed shared read (retried with backoff; subscribers stay open). */
  onError?: (message: string, error: unknown) => void;
};

type Subscriber = {
  filter: FeedFilter | undefined;
  inbox: FeedItem[];
  live: boolean;
  overflowed: boolean;
  /** Ends the subscriber's current wait, if any. */
  wake: () => void;
};

const HELD_BACK_POLL_MS = 100;
const WAKE_SLICE = 25;
const MAX_SPACING_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const noop = () => {};

const pairOf = (event: FeedItem['event']): AheadEntry => [event.transaction_id, event.global_position];
const baseOf = (cursor: FeedCursor): AheadEntry => [cursor.transactionId, cursor.position];

/** Whether `cursor` counts the event at `pair` as handed out. */
export function cursorHolds(cursor: FeedCursor, pair: AheadEntry): boolean {
  return comparePositions(pair, baseOf(cursor)) <= 0 || cursor.ahead.some(([, position]) => position === pair[1]);
}

/** Whether every event `inner` counts as handed out, `outer` counts too (a sufficient test). */
export function cursorCovers(outer: FeedCursor, inner: FeedCursor): boolean {
  return comparePositions(baseOf(inner), baseOf(outer)) <= 0 && inner.ahead.every((entry) => cursorHolds(outer, entry));
}

/** The cursor that counts as handed out what either cursor does. */
export function cursorUnion(a: FeedCursor, b: FeedCursor): FeedCursor {
  const [high, low] = comparePositions(baseOf(a), baseOf(b)) >= 0 ? [a, b] : [b, a];
  const ahead = new Map<number, AheadEntry>();
  for (const entry of [...high.ahead, ...low.ahead]) {
    if (comparePositions(entry, baseOf(high)) > 0) ahead.set(entry[1], entry);
  }
  return { transactionId: high.transactionId, position: high.position, ahead: [...ahead.values()] };
}

/** Waits until the function handed to `setWake` is called or `ms` pass. */
function pause(ms: number, setWake: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      setWake(noop);
      resolve();
    };
    const timer = setTimeout(done, ms);
    setWake(done);
  });
}

/** A hub on `pool`; it reads only while it has subscribers. */
export function createFeedHub(pool: DatabasePool, options: FeedHubOptions = {}): FeedHub {
  const batch = options.batch ?? 500;
  const catchUpBatch = options.catchUpBatch ?? 200;
  const pollMs = options.pollMs ?? 1000;
  const coalesceMs = options.coalesceMs ?? 100;
  const inboxLimit = options.inboxLimit ?? 5000;
  const draining = options.draining ?? (() => false);
  const onError = options.onError ?? noop;
  const subscribers = new Set<Subscriber>();
  const live = new Set<Subscriber>();
  /** The shared reader's cursor; null until its first read of a run. */
  let head: FeedCursor | null = null;
  let running = false;
  let wakeReader = noop;
  const setReaderWake = (wake: () => void) => {
    wakeReader = wake;
  };
  let hubReads = 0;
  /** Counts the shared reader's reads: a catching-up read that saw it move reads again at once. */
  let generation = 0;
  let catchUpReads = 0;

  async function run(): Promise<void> {
    const notifier = eventNotifier(pool);
    let pending = false;
    const unsubscribe = notifier.subscribe(() => {
      pending = true;
      wakeReader();
    });
    const known = new KnownVersions(100_000);
    let failures = 0;
    let full = false;
    let lastRead = 0;
    let spacing = coalesceMs;
    try {
      while (subscribers.size > 0 && !draining()) {
        // Each NOTIFY would otherwise be a read and a socket write per stream for one event:
        // with 300 streams and 70 events/s, writev was the service's largest CPU cost in a
        // profile (bench/sse-streams.ts). Spaced reads hand several events to each write; 100 ms
        // kept a device's writes at 0.6-1.1 times their speed without streams, 50 ms at 0.4-0.8.
        const since = Date.now() - lastRead;
        if (!full && since < spacing) await new Promise((resolve) => setTimeout(resolve, spacing - since));
        let heldBack = false;
        try {
          pending = false;
          lastRead = Date.now();
          head ??= await headCursor(pool);
          hubReads += 1;
          const read = await readFeedBatch(pool, head, { limit: batch, known });
          // from here to the end of the block nothing awaits: a subscriber that goes live
          // sees either none or all of this batch
          for (const item of read.items) {
            for (const subscriber of live) {
              if (!matchesFilter(subscriber.filter, item.event)) continue;
              if (subscriber.inbox.length >= inboxLimit) {
                subscriber.inbox.length = 0;
                subscriber.overflowed = true;
                subscriber.live = false;
                live.delete(subscriber);
              } else {
                subscriber.inbox.push(item);
              }
            }
          }
          head = read.cursor;
          generation += 1;
          full = read.full;
          heldBack = read.heldBack;
          failures = 0;
        } catch (error) {
          full = false;
          failures += 1;
          if (failures === 1) onError('event feed reader: read failed; retrying', error);
          await new Promise((resolve) => setTimeout(resolve, Math.min(pollMs * 2 ** failures, MAX_BACKOFF_MS)));
          continue;
        }
        // Live subscribers take their items, catching-up ones check whether they can go live. A
        // woken stream writes to its socket at once: a slice at a time, so requests are served
        // between slices rather than after 300 writes.
        const fanOut = Date.now();
        const woken = [...subscribers].filter((s) => !s.live || s.inbox.length > 0);
        for (let i = 0; i < woken.length; i += WAKE_SLICE) {
          for (const subscriber of woken.slice(i, i + WAKE_SLICE)) subscriber.wake();
          // the woken streams write before the next turn of the loop
          await new Promise((resolve) => setImmediate(resolve));
        }
        // a fan-out that took long (a busy or starved process) spaces the next reads out, so
        // streams take at most about a quarter of the event loop and requests the rest
        spacing = Math.min(Math.max(coalesceMs, 4 * (Date.now() - fanOut)), MAX_SPACING_MS);
        if (full) continue;
        notifier.ensure();
        if (pending) continue;
        await pause(heldBack ? HELD_BACK_POLL_MS : pollMs, setReaderWake);
      }
    } finally {
      unsubscribe();
      head = null;
      running = false;
      for (const subscriber of subscribers) subscriber.wake();
    }
  }

  async function* follow(
    start: FeedCursor,
    filter: FeedFilter | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<FeedItem[]> {
    const subscriber: Subscriber = { filter, inbox: [], live: false, overflowed: false, wake: noop };
    subscribers.add(subscriber);
    if (!running) {
      running = true;
      void run();
    }
    const setWake = (wake: () => void) => {
      subscriber.wake = wake;
    };
    const onAbort = () => subscriber.wake();
    signal.addEventListener('abort', onAbort);
    try {
      let cursor = start;
      // the cursor is the hub's current one: take the hub's cursors as they come, without comparing
      let inStep = cursor === head;
      let known: KnownVersions | undefined;
      while (!signal.aborted && !draining()) {
        if (!subscriber.live) {
          if (subscriber.overflowed) {
            subscriber.overflowed = false;
            inStep = false;
          }
          if (head !== null && cursorCovers(cursor, head)) {
            subscriber.live = true;
            live.add(subscriber);
            known = undefined;
            continue;
          }
          known ??= filter === undefined ? new KnownVersions(10_000) : undefined;
          catchUpReads += 1;
          const seen = generation;
          const read = await readFeedBatch(pool, cursor, {
            limit: catchUpBatch,
            ...(filter === undefined ? {} : { filter }),
            ...(known === undefined ? {} : { known }),
          });
          if (signal.aborted) break;
          cursor = read.cursor;
          if (read.items.length > 0) yield read.items;
          if (read.full || generation !== seen || (head !== null && cursorCovers(cursor, head))) continue;
          // the hub wakes it after each of its reads; the poll covers a hub that cannot read
          await pause(read.heldBack ? HELD_BACK_POLL_MS : pollMs, setWake);
          continue;
        }
        if (subscriber.inbox.length === 0) {
          await pause(pollMs, setWake);
          continue;
        }
        const items: FeedItem[] = [];
        for (const item of subscriber.inbox.splice(0)) {
          // a cursor from an earlier connection may already hold events the hub reaches later
          const handedOut = !inStep && cursorHolds(cursor, pairOf(item.event));
          if (inStep || cursorCovers(item.cursor, cursor)) {
            cursor = item.cursor;
            inStep = true;
          } else {
            cursor = cursorUnion(cursor, item.cursor);
          }
          if (!handedOut) items.push({ event: item.event, cursor });
        }
        if (items.length > 0) yield items;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      subscribers.delete(subscriber);
      live.delete(subscriber);
      if (subscribers.size === 0) wakeReader();
    }
  }

  return {
    start: async () => head ?? await headCursor(pool),
    follow,
    stats: () => ({ subscribers: subscribers.size, live: live.size, hubReads, catchUpReads }),
  };
}
