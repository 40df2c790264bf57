// Starts fixtures/listener-child.ts as a child process and follows its status lines.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { waitFor } from './realtime-helpers.ts';

const fixture = fileURLToPath(new URL('./fixtures/listener-child.ts', import.meta.url));

/** A running child listener. */
export type ChildListener = {
  child: ChildProcess;
  pid: number;
  statuses: string[];
  stderr: string[];
  waitForStatus: (status: string) => Promise<void>;
  kill: (signal: NodeJS.Signals) => Promise<void>;
};

/** Spawns a child listener on `url` under `name`. */
export function spawnListener(url: string, name: string, env: Record<string, string> = {}): ChildListener {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, DATABASE_URL: url, LISTENER_NAME: name, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const statuses: string[] = [];
  const stderr: string[] = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      try {
        statuses.push((JSON.parse(line) as { status: string }).status);
      } catch { /* not a status line */ }
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr.push(chunk);
  });
  return {
    child,
    pid: child.pid ?? 0,
    statuses,
    stderr,
    waitForStatus: (status) =>
      waitFor(
        `child ${child.pid} to report "${status}" (stderr: ${stderr.join('').slice(-500)})`,
        () => statuses.includes(status),
      ),
    async kill(signal) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

/** Creates the table children record into. */
export async function createSeenTable(pool: DatabasePool): Promise<void> {
  await pool.query(
    sql
      .unsafe`CREATE TABLE realtime_seen (event_id uuid NOT NULL, pid integer NOT NULL, seen_at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  );
}

const seenRow = z.object({ event_id: z.string(), pid: z.number() });

/** Every (event_id, pid) recorded, duplicates included. */
export async function seenRows(pool: DatabasePool): Promise<readonly z.infer<typeof seenRow>[]> {
  return pool.any(sql.type(seenRow)`SELECT event_id, pid FROM realtime_seen ORDER BY seen_at`);
}

/** How many distinct events the children recorded. */
export async function distinctSeen(pool: DatabasePool): Promise<number> {
  return pool.oneFirst(
    sql.type(z.object({ n: z.number() }))`SELECT count(DISTINCT event_id)::int AS n FROM realtime_seen`,
  );
}
