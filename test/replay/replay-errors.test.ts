// A replay that fails part-way through a long read reports the fold's own error, not a
// by-product of the read it abandoned (the next batch is already being fetched while one is
// folded, on the same connection).
import test from 'ava';
import { createEventStore, headAfter } from '../../infra/event-store/event-store.ts';
import { UnknownEventTypeError } from '../../domain/replay/history.ts';
import { createReplayQueries } from '../../infra/replay/queries.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { appendHistory, generateHistory } from '../../bench/generate-history.ts';

const DEVICE = '5a9b0000-0000-4000-8000-0000000000e1';
const START = '2026-03-01T00:00:00.000Z';
let db: TestDatabase;
let firstPartEnd = '';

test.before(async () => {
  db = await createTestDatabase();
  const store = createEventStore(db.pool);
  // 2,600 events: the first 1,000 by one statement, the rest through the cursor in batches of 1,000
  const events = generateHistory({ uuid: DEVICE, count: 1_500, start: START, spanMs: 86_400_000, seed: 11 });
  await appendHistory(db.pool, store, DEVICE, events, 500);
  // an event of a type this build's fold does not know, in the middle of the cursor's first batch
  firstPartEnd = events[events.length - 1]!.timestamp;
  const head = await store.head(db.pool, 'device', DEVICE);
  await db.pool.transaction((tx) =>
    store.append(tx, 'device', DEVICE, head, [{
      event_type: 'vendor.unknown_kind',
      data: {},
      source: 'api',
      timestamp: new Date(Date.parse(events[events.length - 1]!.timestamp) + 1_000).toISOString(),
      metadata: { actor: { type: 'admin', id: 'test' } },
    }])
  );
  const more = generateHistory({
    uuid: DEVICE,
    count: 1_100,
    start: new Date(Date.parse(events[events.length - 1]!.timestamp) + 2_000).toISOString(),
    spanMs: 86_400_000,
    seed: 12,
  })
    .filter((e) => e.type !== 'device.provisioned');
  let last = await store.head(db.pool, 'device', DEVICE);
  for (let i = 0; i < more.length; i += 500) {
    const slice = more.slice(i, i + 500);
    const stored = await db.pool.transaction((tx) =>
      store.append(
        tx,
        'device',
        DEVICE,
        last,
        slice.map((e) => ({
          event_type: e.type,
          data: e.data as Record<string, unknown>,
          timestamp: e.timestamp,
          source: 'api',
          metadata: { actor: e.actor },
        })),
      )
    );
    last = headAfter(stored);
  }
});

test.after.always(async () => {
  await db?.drop();
});

test('a fold that throws mid-cursor rejects with its own error, and the pool stays usable', async (t) => {
  const replay = createReplayQueries(db.pool, { snapshots: false });
  const error = await t.throwsAsync(replay.stateAt(DEVICE, '2027-01-01T00:00:00.000Z'));
  t.true(error instanceof UnknownEventTypeError, `${error?.name}: ${error?.message}`);
  t.regex(error!.message, /vendor\.unknown_kind/);
  // every connection came back clean: a read right after works
  const before = await replay.stateAt(DEVICE, firstPartEnd);
  t.true(before.events_folded > 1_000);
});
