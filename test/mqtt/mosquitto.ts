// A Mosquitto 2 of the test's own: a temporary directory with its configuration, a
// dynamic-security file holding one admin client, on a free loopback port. Never the
// machine's own broker (1883). Debian's `mosquitto` package ships the binary and the plugin;
// without them the suites that need one skip loudly (DEVICETRAIL_REQUIRE_MOSQUITTO=1: fail).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { pbkdf2Sync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { connect } from 'node:net';
import { freePort } from '../../infra/postgres/scratch-server.ts';

const BINARY = process.env['MOSQUITTO_BINARY'] ?? '/usr/sbin/mosquitto';
const PLUGIN = process.env['MOSQUITTO_DYNSEC_PLUGIN'] ?? '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';

/** Why no Mosquitto can be started here, or null when one can. */
export function mosquittoMissing(): string | null {
  if (!existsSync(BINARY)) return `no ${BINARY} (apt-get install mosquitto, or set MOSQUITTO_BINARY)`;
  if (!existsSync(PLUGIN)) return `no ${PLUGIN} (set MOSQUITTO_DYNSEC_PLUGIN)`;
  return null;
}

/** A running test broker. */
export type TestMosquitto = {
  url: string;
  port: number;
  admin: { username: string; password: string };
  /** Stops it (SIGTERM, then SIGKILL) and removes its directory. */
  stop: () => Promise<void>;
  log: () => string;
};

/** The dynamic-security file's password fields for `password` (PBKDF2-SHA512, as mosquitto_ctrl writes them). */
function hashed(password: string) {
  const salt = randomBytes(12);
  return {
    password: pbkdf2Sync(password, salt, 101, 64, 'sha512').toString('base64'),
    salt: salt.toString('base64'),
    iterations: 101,
  };
}

async function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited (${child.exitCode}):\n${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`mosquitto did not listen on ${port}:\n${log()}`);
}

/** Starts a Mosquitto with dynamic security on a free loopback port. */
export async function startMosquitto(): Promise<TestMosquitto> {
  const missing = mosquittoMissing();
  if (missing !== null) throw new Error(missing);
  const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-mosquitto-'));
  const port = await freePort();
  const admin = { username: 'admin', password: randomBytes(18).toString('base64url') };
  const dynsec = {
    defaultACLAccess: { publishClientSend: false, publishClientReceive: true, subscribe: false, unsubscribe: true },
    clients: [{
      username: admin.username,
      textName: 'test admin',
      roles: [{ rolename: 'admin' }],
      ...hashed(admin.password),
    }],
    groups: [],
    roles: [{
      rolename: 'admin',
      acls: [
        { acltype: 'publishClientSend', topic: '$CONTROL/dynamic-security/#', allow: true },
        { acltype: 'publishClientReceive', topic: '$CONTROL/dynamic-security/#', allow: true },
        { acltype: 'subscribePattern', topic: '$CONTROL/dynamic-security/#', allow: true },
      ],
    }],
  };
  await writeFile(path.join(dir, 'dynsec.json'), JSON.stringify(dynsec), { mode: 0o600 });
  await writeFile(
    path.join(dir, 'mosquitto.conf'),
    [
      // run as whoever runs the tests (as root, Mosquitto would switch to the "mosquitto" user,
      // which cannot write this directory)
      `user ${userInfo().username}`,
      'per_listener_settings false',
      `listener ${port} 127.0.0.1`,
      'allow_anonymous false',
      `plugin ${PLUGIN}`,
      `plugin_opt_config_file ${path.join(dir, 'dynsec.json')}`,
      'persistence true',
      `persistence_location ${dir}/`,
      'max_queued_messages 0',
      'log_dest stdout',
      'log_type error',
      'log_type warning',
      'log_type notice',
      '',
    ].join('\n'),
  );
  const child = spawn(BINARY, ['-c', path.join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk) => (output += chunk.toString()));
  const log = () => output.slice(-5000);
  // a worker that ends without its after hooks (a timeout) must not leave the broker running
  const orphaned = () => child.kill('SIGKILL');
  process.once('exit', orphaned);
  await waitForPort(port, child, log);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    admin,
    log,
    async stop() {
      process.off('exit', orphaned);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
