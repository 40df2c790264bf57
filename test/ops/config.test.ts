// Configuration: one zod-validated module; a bad variable is named in the error; empty
// values count as unset; defaults match the README's table.
import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import test from 'ava';
import { availableParallelism } from 'node:os';
import { ConfigError, loadConfig, workerIndex } from '../../app/config.ts';

test('defaults apply when nothing is set', (t) => {
  const config = loadConfig({});
  t.like(config, {
    PORT: 4002,
    HOST: '0.0.0.0',
    DATA_DIR: '.data',
    EMBEDDED_PG_PORT: 54329,
    BODY_LIMIT_KB: 256,
    DB_POOL_SIZE: 20,
    PARTITION_DAYS_AHEAD: 7,
    LOG_REQUESTS: true,
    NODE_ENV: 'development',
    LOG_LEVEL: 'info',
    LOG_FORMAT: 'auto',
    SHUTDOWN_TIMEOUT_MS: 10_000,
  });
  t.is(config.DATABASE_URL, undefined);
  t.is(config.METRICS_TOKEN, undefined);
});

test('WORKERS: one per core by default (on Node), as many as asked, and the worker index only from the primary', (t) => {
  t.is(loadConfig({}).WORKERS, availableParallelism());
  t.is(loadConfig({ WORKERS: '3' }).WORKERS, 3);
  t.is(workerIndex({}), null);
  t.is(workerIndex({ DEVICETRAIL_WORKER: '2' }), 2);
  t.is(workerIndex({ DEVICETRAIL_WORKER: '0' }), null);
  t.is(workerIndex({ DEVICETRAIL_WORKER: 'x' }), null);
});

test('values are coerced and empty strings count as unset', (t) => {
  const config = loadConfig({
    PORT: '8080',
    LOG_REQUESTS: '0',
    LOG_LEVEL: 'debug',
    METRICS_TOKEN: '',
    SHUTDOWN_TIMEOUT_MS: '2500',
  });
  t.like(config, { PORT: 8080, LOG_REQUESTS: false, LOG_LEVEL: 'debug', SHUTDOWN_TIMEOUT_MS: 2500 });
  t.is(config.METRICS_TOKEN, undefined);
});

test('a bad variable is named in the error, with the problem', (t) => {
  for (
    const [name, value, problem] of [
      ['PORT', 'eighty', /PORT: Expected number/],
      ['LOG_LEVEL', 'loud', /LOG_LEVEL: Invalid enum value. Expected 'fatal' \| 'error'/],
      ['LOG_FORMAT', 'xml', /LOG_FORMAT: Invalid enum value/],
      ['METRICS_TOKEN', 'short', /METRICS_TOKEN: must be at least 16 characters/],
      ['SHUTDOWN_TIMEOUT_MS', '5', /SHUTDOWN_TIMEOUT_MS: Number must be greater than or equal to 100/],
      ['DATABASE_URL', 'not a url', /DATABASE_URL: Invalid url/],
      ['NODE_ENV', 'staging', /NODE_ENV: Invalid enum value/],
      ['WORKERS', '0', /WORKERS: Number must be greater than or equal to 1/],
      ['WORKERS', 'many', /WORKERS: Expected number/],
    ] as const
  ) {
    const error = t.throws(() => loadConfig({ [name]: value }), { instanceOf: ConfigError });
    t.regex(error!.message, problem, name);
  }
});

test('the process refuses to start on a bad variable, naming it, and exits 1', (t) => {
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
    env: { ...process.env, LOG_LEVEL: 'loud', PORT: '0' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.is(result.status, 1);
  t.regex(result.stderr, /invalid configuration: LOG_LEVEL: Invalid enum value/);
});

test('no module outside app/config.ts reads process.env (CLI and test harness scripts excepted)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const hits = execFileSync('grep', ['-rlE', 'process\\.env|Deno\\.env', 'app', 'infra', 'domain', 'replay'], {
    encoding: 'utf8',
  }).trim().split('\n');
  t.deepEqual(hits.filter((f) => f !== 'app/config.ts' && f !== 'infra/postgres/embedded-server.ts'), []);
});

test('the README configuration table lists every variable of the schema', async (t) => {
  const readme = await readFile('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'));
  const config = await readFile('app/config.ts', 'utf8');
  const names = [...config.matchAll(/^\s+([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]!);
  t.true(names.length >= 14);
  for (const name of names) t.true(section.includes(`\`${name}\``), `README "Configuration" is missing ${name}`);
});
