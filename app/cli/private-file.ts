// Files a command writes for the person running it (exports, timelines, a rotated token):
// mode 0600, and never through a symlink. The text goes to a new file with a random name in the
// target's directory (O_CREAT|O_EXCL: it fails if anything, a symlink included, is there), which
// is then renamed over the target: rename replaces a symlink at the target instead of following
// it, and a reader never sees half a file (issue #16, finding 12: `replay export --out` and
// `timeline --html` followed symlinks and wrote 0644 files).
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** A private file being written: `commit()` puts it at its path, `abort()` leaves nothing behind. */
export type PrivateFile = {
  write: (text: string) => Promise<void>;
  commit: () => Promise<void>;
  abort: () => Promise<void>;
};

const FLUSH_AT = 64 * 1024;

/** Opens `target` for writing as a private file; nothing is at `target` until `commit()`. */
export async function openPrivateFile(target: string): Promise<PrivateFile> {
  const absolute = path.resolve(target);
  const temporary = path.join(
    path.dirname(absolute),
    `.${path.basename(absolute)}.${randomBytes(8).toString('hex')}.tmp`,
  );
  const handle: FileHandle = await open(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  let pending: string[] = [];
  let pendingLength = 0;
  let closed = false;
  const flush = async () => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    pendingLength = 0;
    await handle.write(text);
  };
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  return {
    async write(text) {
      pending.push(text);
      pendingLength += text.length;
      if (pendingLength >= FLUSH_AT) await flush();
    },
    async commit() {
      try {
        await flush();
        await handle.chmod(0o600); // whatever the umask
        await close();
        await rename(temporary, absolute);
      } catch (error) {
        await close().catch(() => undefined);
        await rm(temporary, { force: true });
        throw error;
      }
    },
    async abort() {
      await close().catch(() => undefined);
      await rm(temporary, { force: true });
    },
  };
}

/** Writes `text` to `target` as a private file (0600, a symlink at `target` replaced, never followed). */
export async function writePrivateFile(target: string, text: string): Promise<void> {
  const file = await openPrivateFile(target);
  try {
    await file.write(text);
  } catch (error) {
    await file.abort();
    throw error;
  }
  await file.commit();
}
