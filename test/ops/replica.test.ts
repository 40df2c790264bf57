// Reads from a streaming replica (REPLICA_DATABASE_URL, issue #19). Starts a PostgreSQL 15
// primary and a streaming replica of it (pg_basebackup -R) on free loopback ports, in private
// temporary directories, as the `postgres` OS user when run as root; never the machine's own
// cluster. Two apps on the same primary: one reading through the replica, one not. Checks that
// the replica-routed reads really go to the replica (with replay paused, a new event is seen by
// one app and not the other), that once the replica has caught up (replay LSN ≥ the primary's
// LSN) replay, analytics, fleet-at-instant, the feed and the console's fleet page answer the
// same on both, and that the feed read from the replica under concurrent writers, one of them
// holding its transaction id open while later ones commit, never skips or repeats an event.
// Skips, loudly, when the Debian PostgreSQL 15 binaries are missing (CI installs them).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { sql } from 'slonik';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import { decide } from '../../domain/device/decide.ts';
import type { DeviceEvent } from '../../domain/device/events.ts';
import type { DeviceState } from '../../domain/device/state.ts';
import { deviceAdapter } from '../../infra/devices/device-store.ts';
import { type AggregateAdapter, handleCommand } from '../../infra/event-store/command-handler.ts';
import { createEventStore } from '../../infra/event-store/event-store.ts';
import { migrate } from '../../infra/postgres/migrate.ts';
import { createDatabasePool } from '../../infra/postgres/pool.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';

const BIN = '/usr/lib/postgresql/15/bin';
const present = ['initdb', 'pg_ctl', 'pg_basebackup'].every((name) => existsSync(path.join(BIN, name)));
if (!present) {
  console.warn(
    `\n*** test/ops/replica.test.ts SKIPPED: no PostgreSQL 15 binaries in ${BIN} (apt-get install postgresql-15); CI has them ***\n`,
  );
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** As root, PostgreSQL refuses to run: its binaries run as the `postgres` user. */
function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
  };
}

function run(binary: string, args: string[]): void {
  const user = runAs();
  const result = spawnSync(path.join(BIN, binary), args, {
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
    cwd: '/',
    timeout: 120_000,
    ...(user ?? {}),
  });
  if (result.status !== 0) {
    throw new Error(`${binary} ${args.join(' ')}: exit ${result.status}\n${result.stdout}\n${result.stderr}`);
  }
}

async function startPair() {
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-replica-'));
  const user = runAs();
  if (user !== null) await chown(dir, user.uid, user.gid);
  await chmod(dir, 0o700);
  const primaryPort = await freePort();
  const replicaPort = await freePort();
  const primaryDir = path.join(dir, 'primary');
  const replicaDir = path.join(dir, 'replica');
  const settings = (port: number) => [
    '-c',
    `port=${port}`,
    '-c',
    "listen_addresses='127.0.0.1'",
    '-c',
    `unix_socket_directories='${dir}'`,
    '-c',
    'fsync=off',
  ];
  run('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-instructions']);
  const started: string[] = [];
  const stop = async () => {
    for (const data of started.reverse()) {
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch { /* already stopped */ }
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    run('pg_ctl', [
      '-D',
      primaryDir,
      '-l',
      path.join(dir, 'primary.log'),
      '-o',
      settings(primaryPort).join(' '),
      '-w',
      'start',
    ]);
    started.push(primaryDir);
    run('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      'postgres',
      '-D',
      replicaDir,
      '-R',
      '-X',
      'stream',
      '--checkpoint=fast',
    ]);
    run('pg_ctl', [
      '-D',
      replicaDir,
      '-l',
      path.join(dir, 'replica.log'),
      '-o',
      settings(replicaPort).join(' '),
      '-w',
      'start',
    ]);
    started.push(replicaDir);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    primaryUrl: `postgres://postgres@127.0.0.1:${primaryPort}/postgres`,
    replicaUrl: `postgres://postgres@127.0.0.1:${replicaPort}/postgres`,
    stop,
  };
}

(present ? test.serial : test.skip)(
  'REPLICA_DATABASE_URL: reads go to the replica, answer as the primary once caught up, and the feed read there never skips an event',
  async (t) => {
    const pair = await startPair();
    t.teardown(() => pair.stop());
    await migrate(pair.primaryUrl);
    const primary = await createDatabasePool(pair.primaryUrl, { maximumPoolSize: 10 });
    const replica = await createDatabasePool(pair.replicaUrl, { maximumPoolSize: 10 });
    t.teardown(async () => {
      await primary.end();
      await replica.end();
    });
    const fixed = new Date();
    const clock = () => fixed;
    const servers: Server[] = [];
    t.teardown(() => {
      for (const server of servers) server.closeAllConnections();
      for (const server of servers) server.close();
    });
    const serve = async (readPool?: typeof primary) => {
      const deps = createDeps(primary, { clock, ...(readPool === undefined ? {} : { readPool }) });
      const server = createServer(createApp(deps).callback());
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return { deps, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    };
    const viaReplica = await serve(replica);
    const viaPrimary = await serve();
    const admin = (await viaPrimary.deps.adminTokens.create('test')).token;
    const call = async (base: string, method: string, url: string, token: string, body?: unknown) => {
      const response = await fetch(`${base}${url}`, {
        method,
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: response.status, text: await response.text() };
    };
    const caughtUp = async () => {
      const lsn = await primary.oneFirst(sql.unsafe`SELECT pg_current_wal_lsn()::text`);
      for (let i = 0; i < 200; i += 1) {
        const done = await replica.oneFirst(
          sql.unsafe`SELECT pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn`,
        );
        if (done === true) return;
        await sleep(50);
      }
      throw new Error('the replica did not catch up within 10 s');
    };

    // a small fleet with history
    const key = JSON.parse(
      (await call(viaPrimary.base, 'POST', '/api/v1/provisioning-keys', admin, { fleet_id: 'r' })).text,
    ).key as string;
    const devices: { uuid: string; key: string }[] = [];
    for (let i = 0; i < 6; i += 1) {
      const device = { uuid: crypto.randomUUID(), key: `replica-key-${crypto.randomUUID()}` };
      const r = await call(viaPrimary.base, 'POST', '/api/v1/device/register', key, {
        uuid: device.uuid,
        deviceName: `r-${i}`,
        deviceType: 'raspberry-pi-4',
        deviceApiKey: device.key,
      });
      t.is(r.status, 201, r.text);
      devices.push(device);
    }
    const report = (device: { uuid: string; key: string }, n: number) =>
      call(viaPrimary.base, 'PATCH', '/api/v1/device/state', device.key, {
        [device.uuid]: { local_ip: `10.1.0.${n % 250}`, cpu_usage: n % 100 },
      });
    for (let n = 0; n < 18; n += 1) t.is((await report(devices[n % devices.length]!, n)).status, 200);
    t.true(
      (await call(viaPrimary.base, 'POST', `/api/v1/devices/${devices[0]!.uuid}/target-state`, admin, {
        apps: { '1000': { appName: 'a', services: [{ serviceName: 'main', image: 'r/a:1' }] } },
        config: {},
      })).status < 300,
    );

    // the routed reads really go to the replica: with its replay paused, a new event shows on
    // the primary's feed and not on the replica's
    await caughtUp();
    const feedIds = async (base: string) =>
      (JSON.parse((await call(base, 'GET', '/api/v1/events?limit=1000', admin)).text).events as { event_id: string }[])
        .map((e) => e.event_id);
    t.deepEqual(await feedIds(viaReplica.base), await feedIds(viaPrimary.base));
    await replica.query(sql.unsafe`SELECT pg_wal_replay_pause()`);
    t.is((await report(devices[1]!, 99)).status, 200);
    await sleep(300);
    const paused = await feedIds(viaReplica.base);
    const current = await feedIds(viaPrimary.base);
    t.is(current.length, paused.length + 1, 'the replica-routed feed saw the write made while replay was paused');
    await replica.query(sql.unsafe`SELECT pg_wal_replay_resume()`);
    await caughtUp();

    // once caught up, every routed read answers as the primary does
    const at = new Date().toISOString();
    const reads = [
      `/api/v1/devices/${devices[0]!.uuid}/state`,
      `/api/v1/devices/${devices[0]!.uuid}/state?at=${encodeURIComponent(at)}`,
      `/api/v1/devices/${devices[0]!.uuid}/timeline`,
      `/api/v1/devices/${devices[0]!.uuid}/drift`,
      `/api/v1/fleet/status?at=${encodeURIComponent(at)}`,
      '/api/v1/analytics/reports',
      '/api/v1/events?limit=500',
      '/',
    ];
    for (const url of reads) {
      const [a, b] = [await call(viaReplica.base, 'GET', url, admin), await call(viaPrimary.base, 'GET', url, admin)];
      t.is(a.status, 200, `${url}: ${a.text.slice(0, 300)}`);
      t.is(a.text, b.text, url);
    }

    // the feed from the replica under concurrent writers: one transaction takes its id first
    // and commits last; a reader following the replica's feed must not pass it
    const store = createEventStore(primary);
    const slowAdapter: AggregateAdapter<DeviceState, DeviceEvent> = {
      ...deviceAdapter,
      async load(connection, id, lock) {
        await connection.query(sql.unsafe`SELECT pg_current_xact_id()`); // the id, taken now
        await sleep(1500); // …while later transactions commit
        return deviceAdapter.load(connection, id, lock);
      },
    };
    const seen: string[] = [];
    let cursor: string | null = null;
    let reading = true;
    const reader = (async () => {
      while (reading) {
        const page = JSON.parse(
          (await call(
            viaReplica.base,
            'GET',
            `/api/v1/events?limit=100${cursor === null ? '' : `&after=${encodeURIComponent(cursor)}`}`,
            admin,
          )).text,
        ) as { events: { event_id: string }[]; next_cursor: string };
        seen.push(...page.events.map((e) => e.event_id));
        cursor = page.next_cursor;
        await sleep(20);
      }
    })();
    const slow = handleCommand(
      primary,
      store,
      slowAdapter,
      devices[5]!.uuid,
      (state) =>
        decide({
          type: 'set_active',
          now: new Date().toISOString(),
          is_active: state.status === 'unregistered' ? true : !state.is_active,
        }, state),
      { metadata: { actor: { type: 'system', id: 'replica-test' } }, source: 'system' },
    );
    const writers = Promise.all([0, 1, 2, 3].map(async (w) => {
      for (let n = 0; n < 12; n += 1) {
        t.is((await report(devices[w]!, 200 + w * 20 + n)).status, 200);
        await sleep(40);
      }
    }));
    const slowResult = await slow;
    t.is(slowResult.events.length, 1);
    await writers;
    await caughtUp();
    // let the reader pass the last commit, then stop it
    const all = await primary.anyFirst(sql.unsafe`SELECT event_id::text FROM events`);
    for (let i = 0; i < 200 && new Set(seen).size < all.length; i += 1) await sleep(50);
    reading = false;
    await reader;
    t.is(seen.length, new Set(seen).size, 'the replica feed repeated an event');
    t.deepEqual([...seen].sort(), [...all].sort(), 'the replica feed skipped an event');
    t.true(seen.includes(slowResult.events[0]!.event_id));
  },
);
