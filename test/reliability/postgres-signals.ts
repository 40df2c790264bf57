// Taking a PostgreSQL server down the hard ways, for the outage drills: a crash (SIGKILL of the
// postmaster and every backend) and a freeze (SIGSTOP of all of them, undone by SIGCONT). The
// postmaster is stopped first, so that it forks no backend between the listing and the signal
// (a backend left alive keeps the shared memory, and the server could not start again).
import { readdir, readFile } from 'node:fs/promises';
import type { EmbeddedPostgres } from '../../infra/postgres/embedded-server.ts';

const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name);
  } catch { /* it just exited */ }
};
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Every process whose parent is `pid` (the postmaster's backends and auxiliary processes). */
async function childrenOf(pid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // the command may contain spaces and parentheses: the ppid is the 2nd field after the last ')'
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) pids.push(Number(entry));
  }
  return pids;
}

/** The postmaster, stopped, and all its children, signalled with SIGSTOP. */
async function stopAll(server: EmbeddedPostgres): Promise<number[]> {
  signal(server.pid, 'SIGSTOP');
  const children = await childrenOf(server.pid);
  for (const pid of children) signal(pid, 'SIGSTOP');
  return [server.pid, ...children];
}

/** SIGKILL of every server process, as an OOM kill or a host crash would; resolves when all are gone. */
export async function crashServer(server: EmbeddedPostgres): Promise<void> {
  const pids = await stopAll(server);
  for (const pid of pids) signal(pid, 'SIGKILL');
  for (let i = 0; i < 400 && pids.some(alive); i += 1) await new Promise((r) => setTimeout(r, 25));
  await server.stop(); // resolves at once: the process has exited
}

/** SIGSTOP of every server process; the returned function continues them. */
export async function freezeServer(server: EmbeddedPostgres): Promise<() => void> {
  const pids = await stopAll(server);
  return () => {
    for (const pid of pids) signal(pid, 'SIGCONT');
  };
}
