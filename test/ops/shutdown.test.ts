// Graceful shutdown, with real processes: SIGTERM lets a request in flight finish with 2xx,
// refuses new connections, stops the embedded PostgreSQL and exits 0; `npm start` then
// Ctrl-C (SIGINT to the whole process group) leaves no PostgreSQL process behind.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { type IncomingMessage, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createShutdownRegistry } from '../../app/shutdown.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';
import { Buffer } from 'node:buffer';

type Service = {
  child: ChildProcess;
  lines: () => Record<string, unknown>[];
  waitFor: (pattern: RegExp) => Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
};

/** Starts `command` with the service's environment and follows its JSON log lines. */
function startService(
  command: string,
  args: string[],
  env: Record<string, string>,
  options: { detached?: boolean } = {},
): Service {
  const { DATABASE_URL: _ignored, ...inherited } = process.env;
  const child = spawn(command, args, {
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const entries: Record<string, unknown>[] = [];
  const waiters: { pattern: RegExp; resolve: (e: Record<string, unknown>) => void }[] = [];
  let buffer = '';
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    output += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      entries.push(entry);
      for (const w of [...waiters]) {
        if (w.pattern.test(String(entry['msg']))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(entry);
        }
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines: () => entries,
    waitFor: (pattern) => {
      const seen = entries.find((e) => pattern.test(String(e['msg'])));
      if (seen !== undefined) return Promise.resolve(seen);
      return Promise.race([
        new Promise<Record<string, unknown>>((resolve) => waiters.push({ pattern, resolve })),
        exited.then((code) => {
          throw new Error(`service exited (${code}) before logging ${pattern}:\n${output}`);
        }),
      ]);
    },
    exited,
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Pids of processes whose command line mentions `needle` (e.g. a data directory). */
async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

test.serial('SIGTERM: a request in flight completes with 2xx, new connections are refused, PostgreSQL stops, exit 0; then npm start + Ctrl-C leaves no PostgreSQL behind', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-shutdown-'));
  await chmod(dataDir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const env = {
    DATA_DIR: dataDir,
    PORT: String(await freePort()),
    EMBEDDED_PG_PORT: String(await freePort()),
    MQTT_PORT: String(await freePort()),
    HOST: '127.0.0.1',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_MS: '30000',
    WORKERS: '1', // one process: test/ops/cluster.test.ts drains several
  };
  const base = `http://127.0.0.1:${env.PORT}`;

  // --- 1: SIGTERM to the node process with a request in flight
  const service = startService(process.execPath, ['--import', 'tsx', 'app/main.ts'], env);
  t.teardown(() => {
    if (service.child.exitCode === null) service.child.kill('SIGKILL');
  });
  const started = await service.waitFor(/^embedded PostgreSQL: started \(pid \d+/);
  const postgresPid = Number(/pid (\d+)/.exec(String(started['msg']))![1]);
  await service.waitFor(/^started$/);
  t.true(alive(postgresPid));
  const adminToken = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();

  // A request whose body is still arriving: headers are in (the server answered
  // "100 Continue"), half the body is sent; the rest follows only after SIGTERM.
  const body = Buffer.from(
    `${JSON.stringify({ fleet_id: 'in-flight', description: 'sent across a SIGTERM' })}${' '.repeat(64 * 1024)}`,
  );
  const half = Math.floor(body.length / 2);
  const response = new Promise<{ status: number; headers: IncomingMessage['headers']; text: string }>(
    (resolve, reject) => {
      const req = httpRequest(`${base}/api/v1/provisioning-keys`, {
        method: 'POST',
        headers: {
          'Authorization': `Bearer ${adminToken}`,
          'Content-Type': 'application/json',
          'Content-Length': String(body.length),
          'Expect': '100-continue',
        },
      }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      });
      req.on('error', reject);
      req.on('continue', async () => {
        req.write(body.subarray(0, half));
        service.child.kill('SIGTERM');
        await service.waitFor(/^shutting down/);
        // stop accepting: a new connection is refused while the old request is still open
        const refused = await fetch(`${base}/healthz`).then(() => false, () => true);
        t.true(refused, 'a new connection was accepted during shutdown');
        req.end(body.subarray(half));
      });
    },
  );
  const finished = await response;
  t.is(finished.status, 201, finished.text);
  t.is(JSON.parse(finished.text).fleet_id, 'in-flight');
  t.is(await service.exited, 0, service.lines().map((e) => JSON.stringify(e)).join('\n'));
  t.false(alive(postgresPid), 'the embedded PostgreSQL was left running');
  const messages = service.lines().map((e) => String(e['msg']));
  t.true(messages.indexOf('stopped database pool') < messages.indexOf('stopped database server'));
  t.is(messages.at(-1), 'stopped');
  t.deepEqual(await processesMentioning(dataDir), []);

  // --- 2: `npm start` in its own process group, then SIGINT to the group (what Ctrl-C does)
  const npm = startService('npm', ['start'], env, { detached: true });
  t.teardown(() => {
    try {
      process.kill(-npm.child.pid!, 'SIGKILL');
    } catch { /* the group is gone */ }
  });
  const again = await npm.waitFor(/^embedded PostgreSQL: started \(pid \d+/);
  const secondPid = Number(/pid (\d+)/.exec(String(again['msg']))![1]);
  await npm.waitFor(/^started$/);
  t.is((await fetch(`${base}/healthz`)).status, 200);
  process.kill(-npm.child.pid!, 'SIGINT');
  await npm.exited;
  await npm.waitFor(/^stopped$/);
  t.false(alive(secondPid), 'Ctrl-C left the embedded PostgreSQL running');
  t.deepEqual(await processesMentioning(dataDir), [], 'a process still uses the data directory');
});

test('stop hooks run once, newest first; a failing or hanging hook does not stop the others', async (t) => {
  const registry = createShutdownRegistry();
  const order: string[] = [];
  registry.on('database', () => {
    order.push('database');
  });
  registry.on('pool', async () => {
    order.push('pool');
    throw new Error('boom');
  });
  const off = registry.on('removed', () => {
    order.push('removed');
  });
  registry.on('hangs', () =>
    new Promise(() => {
      order.push('hangs');
    }));
  registry.on('listener', async () => {
    order.push('listener');
  });
  off();
  t.false(registry.draining);
  const outcomes = await registry.run(50);
  t.true(registry.draining);
  t.deepEqual(order, ['listener', 'hangs', 'pool', 'database']);
  t.deepEqual(outcomes.map((o) => [o.name, o.result]), [
    ['listener', 'ok'],
    ['hangs', 'timed_out'],
    ['pool', 'failed'],
    ['database', 'ok'],
  ]);
  t.is(await registry.run(50), outcomes, 'a second signal does not run the hooks again');
  t.is(order.length, 4);
});
