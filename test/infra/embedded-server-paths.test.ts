// Regression tests for predictable temporary paths (hardening issue, finding 10): a path in the
// shared temp directory is reused only as a real, private directory; the server log is 0600.
import test from 'ava';
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { privateDirectoryProblem, startEmbeddedPostgres } from '../../infra/postgres/embedded-server.ts';
import { freePort } from '../../infra/postgres/scratch-server.ts';

const me = process.getuid?.() ?? 0;

test('a planted symlink, a file, a foreign or a shared-writable directory is never trusted', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'dt-paths-'));
  try {
    const real = path.join(root, 'real');
    await mkdir(real, { mode: 0o700 });
    t.is(await privateDirectoryProblem(real, [me], 0o077), null);
    t.is(await privateDirectoryProblem(path.join(root, 'absent'), [me], 0o077), 'missing');

    const link = path.join(root, 'link');
    await symlink(real, link);
    t.is(await privateDirectoryProblem(link, [me], 0o077), 'it is a symbolic link');

    const file = path.join(root, 'file');
    await writeFile(file, '');
    t.is(await privateDirectoryProblem(file, [me], 0o077), 'it is not a directory');

    const shared = path.join(root, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o777);
    t.is(await privateDirectoryProblem(shared, [me], 0o022), 'its mode is 777');

    if (me === 0) {
      const foreign = path.join(root, 'foreign');
      await mkdir(foreign, { mode: 0o700 });
      await chown(foreign, 65534, 65534);
      t.is(await privateDirectoryProblem(foreign, [0], 0o077), 'it is owned by uid 65534');
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the embedded server writes its log readable by its owner only', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'dt-pglog-'));
  await chmod(dir, 0o755); // as root, PostgreSQL runs as another user and must reach its data
  const server = await startEmbeddedPostgres({
    dataDir: path.join(dir, 'pg'),
    stateDir: dir,
    port: await freePort(),
    database: 'postgres',
    log: () => {},
  });
  try {
    t.is((await stat(path.join(dir, 'postgres.log'))).mode & 0o777, 0o600);
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
