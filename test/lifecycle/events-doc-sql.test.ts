// The SQL in docs/EVENTS.md, verbatim, against the scripted device's log.
import { readFileSync } from 'node:fs';
import test from 'ava';
import pg from 'pg';
import { lifecycleScenario, runScenario, SCENARIO_START } from './lifecycle-scenario.ts';
import { deviceDriver, deviceEvents, startLifecycleApp } from './test-driver.ts';

const documentedEventId = 'e7ef2ef0-3714-477e-a614-ca0a9185ab79';

test('the documented queries run and answer for the scripted device', async (t) => {
  const { app, clock, sweepers } = await startLifecycleApp(SCENARIO_START);
  t.teardown(() => app.close());
  const { uuid, driver } = await deviceDriver(app, clock, sweepers, '12345678-1234-1234-1234-123456789abc');
  await runScenario(lifecycleScenario, SCENARIO_START, driver);
  const firstReport = (await deviceEvents(app, uuid)).find((e) => e.event_type === 'current_state.updated')!;

  const doc = readFileSync(new URL('../../docs/EVENTS.md', import.meta.url), 'utf8');
  const statements = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.split(/;\s*\n/))
    .map((s) => s.replace(/^--.*$/gm, '').trim()).filter((s) => s !== '');
  t.is(statements.length, 4);
  const client = new pg.Client({ connectionString: app.db.url });
  await client.connect();
  t.teardown(() => client.end());
  const results = [];
  // the documented "crashes in the last day" counts from now(): the scenario's clock is in 2026
  for (const statement of statements) {
    results.push(
      (await client.query(
        statement.replace(documentedEventId, firstReport.event_id).replace("now() - interval '1 day'", "'2026-03-01'"),
      )).rows,
    );
  }
  const [lifecycle, crashes, delays, caused] = results;
  t.is(lifecycle!.length, 15); // 9 container, 4 reconciliation, 2 connection events
  t.deepEqual(crashes!.map((r) => [r.app_id, r.service, Number(r.crashes)]), [['1000', 'worker', 2]]);
  t.deepEqual(delays![0]!.p50_p90_ms, [115000, 167000]);
  t.deepEqual(caused!.map((r) => r.event_type), [
    'network.created',
    'volume.created',
    'container.started',
    'container.started',
    'container.started',
    'reconciliation.completed',
  ]);
});
