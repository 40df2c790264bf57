// The API the console's listeners and integrity pages stand on (issue #17): listeners and
// dead letters, partitions and the retention horizon, hash-chain checks run on demand.
import test from 'ava';
import { startConsoleApp } from './console-app.ts';

test('dead-letter actions refuse ids beyond a safe integer with a 400 naming the field (was a 500)', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  for (const action of ['redeliver', 'discard']) {
    const response = await app.request(`/api/v1/dead-letters/${action}`, {
      method: 'POST',
      token: app.admin.token,
      body: { ids: [1, 4.89974176596155e+206] },
    });
    t.is(response.status, 400, response.text);
    t.regex(response.json.error.message, /^body\.ids\.1: /);
  }
  const fine = await app.request('/api/v1/dead-letters/discard', {
    method: 'POST',
    token: app.admin.token,
    body: { ids: [Number.MAX_SAFE_INTEGER] },
  });
  t.deepEqual(fine.json, { discarded: 0 });
});

test('an integrity check runs on demand, is answered with its result, and stays listed', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  await app.registerDevice();
  const run = await app.request('/api/v1/integrity/checks', { method: 'POST', token: app.admin.token });
  t.is(run.status, 200, run.text);
  t.like(run.json, { started: true, check: { status: 'passed', started_by: app.admin.id, breaks: [] } });
  t.true(run.json.check.aggregates >= 2, 'the device and its provisioning key');
  t.true(run.json.check.events >= 2);
  const listed = await app.request('/api/v1/integrity/checks?limit=5', { token: app.admin.token });
  t.is(listed.json.checks[0].id, run.json.check.id);
  const partitions = await app.request('/api/v1/partitions', { token: app.admin.token });
  t.is(partitions.status, 200);
  t.is(partitions.json.retention_days, 90);
  t.true(partitions.json.totals.rows >= 2);
  t.true(partitions.json.partitions.length >= 1);
});

test('listeners and dead letters are listed; a selection is required to act', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  t.deepEqual((await app.request('/api/v1/listeners', { token: app.admin.token })).json, { listeners: [] });
  t.deepEqual((await app.request('/api/v1/dead-letters', { token: app.admin.token })).json, { dead_letters: [] });
  const none = await app.request('/api/v1/dead-letters/redeliver', {
    method: 'POST',
    token: app.admin.token,
    body: {},
  });
  t.is(none.status, 400);
  t.regex(none.json.error.message, /give ids, a listener, or all: true/);
  const all = await app.request('/api/v1/dead-letters/redeliver', {
    method: 'POST',
    token: app.admin.token,
    body: { all: true },
  });
  t.deepEqual(all.json, { requested: 0 });
});
