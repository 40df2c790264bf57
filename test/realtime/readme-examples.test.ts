// The README's two seed examples (EventListener, ProjectionBuilder), taken from README.md
// as they are written and run as scripts in this project: against DATABASE_URL, and the
// projection also against the embedded server, started and stopped by the script itself.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { sql } from 'slonik';
import { z } from 'zod';
import { startTestApp, type TestApp } from '../helpers/app.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { waitFor, waitForHorizon } from './realtime-helpers.ts';

const root = path.resolve(import.meta.dirname, '../..');
let app: TestApp;
const written: string[] = [];
test.before(async () => {
  app = await startTestApp();
});
test.after.always(async () => {
  for (const file of written) await unlink(file).catch(() => undefined);
  await app?.close();
});

/** The README's TypeScript blocks that import app/cli/event-sourcing.ts. */
async function readmeExamples(): Promise<string[]> {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  return [...readme.matchAll(/```typescript\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((code) =>
    code.includes("from '../app/cli/event-sourcing.ts'")
  );
}

/** Writes a script into scripts/ (where the README says to put it), removed after the tests. */
async function script(code: string): Promise<string> {
  const file = path.join(root, 'scripts', `.readme-example-${randomBytes(4).toString('hex')}.ts`);
  await writeFile(file, code);
  written.push(file);
  return file;
}

function run(file: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  return { child, exited, out: () => stdout, err: () => stderr };
}

test.serial("the README carries the seed's two examples", async (t) => {
  const [listener, projection] = await readmeExamples();
  t.regex(
    listener ?? '',
    /const listener = new EventListener\(\);[\s\S]*listener\.onEventType\('device\.offline'[\s\S]*listener\.onEventType\('target_state\.updated'[\s\S]*await listener\.start\(\);/,
  );
  t.regex(
    projection ?? '',
    /const builder = new ProjectionBuilder\('device_summary'\);[\s\S]*deviceCount: \(state\.deviceCount \|\| 0\) \+ 1[\s\S]*lastUpdate: event\.timestamp[\s\S]*await builder\.process\(\);/,
  );
});

test.serial('the listener example prints the alerts for device.offline and target_state.updated; Ctrl-C stops it', async (t) => {
  const [code] = await readmeExamples();
  const child = run(await script(code!), { DATABASE_URL: app.db.url });
  const key = await app.createProvisioningKey({ fleet_id: 'fleet-readme' });
  const { uuid } = await app.registerDevice(key.key);
  await app.request('POST', `/api/v1/devices/${uuid}/target-state`, {
    token: app.adminToken,
    body: { apps: {}, config: {} },
  });
  await app.request('PATCH', `/api/v1/devices/${uuid}/active`, { token: app.adminToken, body: { is_active: false } });
  await waitFor(
    `both alerts (stdout: ${child.out()} stderr: ${child.err()})`,
    () =>
      child.out().includes(`🚨 Device went offline: ${uuid}`) &&
      child.out().includes(`🎯 Target state changed for ${uuid}`),
  );
  child.child.kill('SIGINT');
  const [exitCode] = await child.exited;
  t.is(exitCode, 0, child.err());
  t.is(child.out().split('\n').filter((l) => l.includes(uuid)).length, 2, 'each alert once');
});

const stateRow = z.object({ state: z.record(z.string(), z.unknown()) });

test.serial('the projection example folds the log and exits; it does not disturb the built-in device_summary', async (t) => {
  const [, code] = await readmeExamples();
  const file = await script(code!);
  await waitForHorizon(app.db.pool);
  const summaryBefore = (await app.request('GET', '/api/v1/fleet/summary', { token: app.adminToken })).body.totals;
  const child = run(file, { DATABASE_URL: app.db.url });
  const [exitCode] = await child.exited;
  t.is(exitCode, 0, child.err());
  const provisioned = await app.db.pool.oneFirst(
    sql.type(
      z.object({ n: z.number() }),
    )`SELECT count(*)::int AS n FROM events WHERE event_type = 'device.provisioned'`,
  );
  const lastTarget = await app.db.pool.oneFirst(sql.type(z.object({ t: z.string() }))`
    SELECT "timestamp" AS t FROM events WHERE event_type = 'target_state.updated' ORDER BY transaction_id DESC, global_position DESC LIMIT 1`);
  const { state } = await app.db.pool.one(sql.type(stateRow)`
    SELECT state FROM projection_states WHERE projection = 'device_summary' AND key = 'default'`);
  t.deepEqual(state, { deviceCount: provisioned, lastUpdate: lastTarget });
  t.deepEqual(
    (await app.request('GET', '/api/v1/fleet/summary', { token: app.adminToken })).body.totals,
    summaryBefore,
  );

  // again: nothing new, same state
  const again = run(file, { DATABASE_URL: app.db.url });
  t.is((await again.exited)[0], 0);
  t.deepEqual(
    (await app.db.pool.one(
      sql.type(stateRow)`SELECT state FROM projection_states WHERE projection = 'device_summary' AND key = 'default'`,
    )).state,
    state,
  );
});

test.serial('without DATABASE_URL the example starts the embedded server under DATA_DIR and stops it when done', async (t) => {
  const [, code] = await readmeExamples();
  const file = await script(`${code!}\nconsole.log(JSON.stringify(await builder.getState()));\n`);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-readme-'));
  await chmod(dataDir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
  try {
    const child = run(file, { DATABASE_URL: '', DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) });
    const [exitCode] = await child.exited;
    t.is(exitCode, 0, child.err());
    t.is(child.out().trim(), '{}', 'an empty log: the state is the initial one');
    t.true(existsSync(path.join(dataDir, 'pg', 'PG_VERSION')), 'a cluster was created under DATA_DIR');
    t.false(existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'and its server stopped with the script');
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
