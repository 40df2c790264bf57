// ProjectionBuilder: the seed's example, catch-up and continuous modes, rebuild, states and
// checkpoint committed together, concurrent builders, keyed states, definition changes.
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { ProjectionBuilder, ProjectionError } from '../../infra/realtime/projection-builder.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { append, memoryLog, preparePartitions, waitFor, waitForHorizon } from './realtime-helpers.ts';

let db: TestDatabase;
test.before(async () => {
  db = await createTestDatabase();
  await preparePartitions(db.pool);
});
test.after.always(async () => {
  await db?.drop();
});

/** The seed's example, on a pool and under another name. */
function seedExample(name: string) {
  const builder = new ProjectionBuilder(name, { pool: db.pool, batchSize: 7, log: memoryLog().log });
  builder.on('device.provisioned', async (_event, state) => {
    return { ...state, deviceCount: (state.deviceCount || 0) + 1 };
  });
  builder.on('target_state.updated', async (event, state) => {
    return { ...state, lastUpdate: event.timestamp };
  });
  return builder;
}

const countRow = z.object({ n: z.number() });
const countOf = (type: string) =>
  db.pool.oneFirst(sql.type(countRow)`SELECT count(*)::int AS n FROM events WHERE event_type = ${type}`);

test.serial('the seed example: process() catches up and returns; again only folds what is new; rebuild() gives the same', async (t) => {
  for (let i = 0; i < 5; i += 1) await append(db.pool, `dev-${i}`, 1, { type: 'device.provisioned' });
  const [target] = await append(db.pool, 'dev-1', 1, {
    type: 'target_state.updated',
    timestamp: '2026-01-02T03:04:05.000Z',
  });
  await append(db.pool, 'noise', 3, { type: 'current_state.updated' });

  await waitForHorizon(db.pool);
  const builder = seedExample('seed_summary');
  const first = await builder.process();
  t.deepEqual(first, { processed: 6, caught_up: true });
  t.deepEqual(await builder.getState(), { deviceCount: 5, lastUpdate: target!.timestamp });
  t.deepEqual(await builder.process(), { processed: 0, caught_up: true });

  await append(db.pool, 'dev-9', 1, { type: 'device.provisioned' });
  await waitForHorizon(db.pool);
  t.deepEqual(await builder.process(), { processed: 1, caught_up: true });
  t.is((await builder.getState()).deviceCount, 6);

  const rebuilt = await builder.rebuild();
  t.deepEqual(rebuilt, { processed: 7, caught_up: true });
  t.deepEqual(await builder.getState(), { deviceCount: 6, lastUpdate: target!.timestamp });
  const status = await builder.status();
  t.is(status.events_behind, 0);
  t.is(status.events_processed, 7);
  t.not(status.rebuilt_at, null);

  // a second instance with the same definition shares the stored state
  t.is((await seedExample('seed_summary').getState()).deviceCount, 6);
});

test.serial('maxEvents bounds a catch-up; the rest comes with the next call', async (t) => {
  const builder = seedExample('bounded');
  const total = await countOf('device.provisioned') + await countOf('target_state.updated');
  const part = await builder.process({ maxEvents: 3 });
  t.deepEqual(part, { processed: 3, caught_up: false });
  const rest = await builder.process();
  t.deepEqual(rest, { processed: total - 3, caught_up: true });
});

test.serial('a handler that throws fails the batch: neither states nor checkpoint move; fixed, it goes on', async (t) => {
  let broken = true;
  const make = () => {
    const builder = new ProjectionBuilder('fragile', { pool: db.pool, batchSize: 100, log: memoryLog().log });
    builder.on('device.provisioned', (event, state) => {
      if (broken && event.aggregate_id === 'dev-3') throw new Error('bad event');
      return { ...state, seen: [...(state.seen ?? []), event.aggregate_id] };
    });
    return builder;
  };
  const builder = make();
  const error = await t.throwsAsync(builder.process(), { instanceOf: ProjectionError });
  t.is(error?.event.aggregate_id, 'dev-3');
  t.deepEqual(await builder.getState(), {}, 'the events before dev-3 in the batch were not committed');
  const status = await builder.status();
  t.is(status.events_processed, 0);
  t.regex(status.last_error ?? '', /bad event/);

  broken = false;
  await builder.process();
  t.is((await builder.getState()).seen.length, await countOf('device.provisioned'));
  t.is((await builder.status()).last_error, null);
});

test.serial('two builders of the same projection processing at once never fold an event twice', async (t) => {
  for (let i = 0; i < 60; i += 1) await append(db.pool, `race-${i}`, 1, { type: 'device.provisioned' });
  await waitForHorizon(db.pool);
  const expected = await countOf('device.provisioned');
  const a = seedExample('raced');
  const b = seedExample('raced');
  await Promise.all([a.process(), b.process(), a.process(), b.process()]);
  t.is((await a.getState()).deviceCount, expected);
});

test.serial('continuous mode keeps the state up to date until stop(); one process per projection works', async (t) => {
  const builder = seedExample('continuous');
  await builder.start();
  const standby = seedExample('continuous');
  const statuses: string[] = [];
  const second = new ProjectionBuilder('continuous', {
    pool: db.pool,
    log: memoryLog().log,
    onStatus: (s) => statuses.push(s),
  });
  // same handlers, same definition: it stands by
  second.on('device.provisioned', async (_event, state) => {
    return { ...state, deviceCount: (state.deviceCount || 0) + 1 };
  });
  second.on('target_state.updated', async (event, state) => {
    return { ...state, lastUpdate: event.timestamp };
  });
  t.is(second.definition, standby.definition);
  await second.start();
  await waitFor('the second builder to stand by', () => statuses.includes('standby'));

  await waitFor(
    'the history',
    async () => (await builder.getState()).deviceCount === await countOf('device.provisioned'),
  );
  await append(db.pool, 'live-1', 1, { type: 'device.provisioned' });
  await waitFor(
    'the new device',
    async () => (await builder.getState()).deviceCount === await countOf('device.provisioned'),
  );
  await builder.stop();
  await second.stop();
  t.pass();
});

test.serial('keyed states: one per key; null deletes; a changed definition builds anew from the first event', async (t) => {
  const perDevice = new ProjectionBuilder<{ events: number }>('per_device', {
    pool: db.pool,
    key: (event) => (event.aggregate_id.startsWith('dev-') ? event.aggregate_id : null),
    initialState: () => ({ events: 0 }),
  });
  perDevice.on('device.provisioned', (_event, state) => ({ events: state.events + 1 }));
  perDevice.on('target_state.updated', () => null);
  await perDevice.process();
  t.deepEqual(await perDevice.getState('dev-0'), { events: 1 });
  t.deepEqual(
    await perDevice.getState('dev-1'),
    { events: 0 },
    'deleted by the target update: back to the initial state',
  );
  t.deepEqual(await perDevice.getState('race-1'), { events: 0 }, 'skipped: key() returned null');
  const stored = await db.pool.anyFirst(sql.type(z.object({ key: z.string() }))`
    SELECT key FROM projection_states WHERE projection = 'per_device' AND definition = ${perDevice.definition} ORDER BY key`);
  t.false(stored.includes('dev-1'));
  t.throws(() => perDevice.on('x', () => undefined), { message: /register handlers before/ });

  const changed = new ProjectionBuilder<{ events: number }>('per_device', {
    pool: db.pool,
    version: 2,
    key: (event) => (event.aggregate_id.startsWith('dev-') ? event.aggregate_id : null),
    initialState: () => ({ events: 0 }),
  });
  changed.on('device.provisioned', (_event, state) => ({ events: state.events + 1 }));
  changed.on('target_state.updated', () => null);
  t.not(changed.definition, perDevice.definition);
  t.deepEqual(await changed.getState('dev-0'), { events: 0 }, 'nothing yet under the new definition');
  await changed.process();
  t.deepEqual(await changed.getState('dev-0'), { events: 1 });
});

test.serial('states kept in memory are dropped when another builder commits; whole-stream reads fold every event once, in order', async (t) => {
  const build = (cacheStates: number) => {
    const builder = new ProjectionBuilder<{ seen: number[] }>('cached_per_aggregate', {
      pool: db.pool,
      batchSize: 5,
      cacheStates,
      aggregateType: 'cache-test',
      key: (event) => event.aggregate_id,
      initialState: () => ({ seen: [] }),
    });
    builder.on('test.happened', (event, state) => ({ seen: [...state.seen, event.aggregate_version] }));
    return builder;
  };
  const a = build(100);
  const b = build(0);
  t.is(a.definition, b.definition, 'cacheStates is not part of the definition');
  const ids = ['agg-1', 'agg-2', 'agg-3'];
  const round = async (n: number) => {
    for (const id of ids) await append(db.pool, id, n, { aggregateType: 'cache-test' });
    await append(db.pool, 'other', 1, { aggregateType: 'not-read' });
    await waitForHorizon(db.pool);
  };
  await round(3);
  await a.process();
  await round(2);
  await b.process(); // another process commits: a's memory is stale
  await round(2);
  await a.process();
  await round(1);
  await a.process();
  for (const id of ids) t.deepEqual((await a.getState(id)).seen, [1, 2, 3, 4, 5, 6, 7, 8], id);
  t.deepEqual(await a.getState('other'), { seen: [] }, 'other aggregate types are not read');
});
