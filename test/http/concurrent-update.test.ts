// A write that loses the race for its stream on every retry gets a 409 the client can retry,
// never a 500: handleCommand's last ConcurrencyError is mapped by the error middleware.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import { createTestDatabase } from '../helpers/database.ts';

test('a write that loses every retry to concurrent writers is a 409 concurrent_update with Retry-After', async (t) => {
  const db = await createTestDatabase();
  t.teardown(() => db.drop());
  const unexpected: unknown[] = [];
  const deps = createDeps(db.pool, { logError: (_message, error) => unexpected.push(error) });
  const store = deps.store;
  let appends = 0;
  // every append arrives one version late, as if another writer always committed first:
  // the real store's compare-and-set refuses it with a ConcurrencyError
  deps.store = {
    ...store,
    append: (transaction, aggregateType, aggregateId, expected, events) => {
      appends += 1;
      return store.append(
        transaction,
        aggregateType,
        aggregateId,
        { ...expected, version: expected.version - 1 },
        events,
      );
    },
  };
  const token = (await deps.adminTokens.create('test')).token;
  const server = createServer(createApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const countEvents = () =>
    db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM events`);
  const before = await countEvents();

  const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/provisioning-keys`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ fleet_id: 'fleet-1' }),
  });

  t.is(response.status, 409);
  t.is(response.headers.get('Retry-After'), '1');
  const body = (await response.json()) as { error: { code: string } };
  t.is(body.error.code, 'concurrent_update');
  t.is(appends, 8, 'handleCommand retried up to its 8 attempts before giving up');
  t.deepEqual(unexpected, [], 'a lost race is not logged as an unexpected error');
  t.is(await countEvents(), before, 'nothing was written');
});
