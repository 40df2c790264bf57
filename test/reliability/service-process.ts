// The real service (`app/main.ts`) as a child process, for the crash and outage drivers:
// started with an environment, its JSON log lines kept (for the secrets grep), waited on
// until it listens, killed with any signal.
import { type ChildProcess, spawn } from 'node:child_process';
import { Buffer } from 'node:buffer';

/** A running service process. */
export type ServiceProcess = {
  child: ChildProcess;
  pid: number;
  baseUrl: string;
  /** Every stdout line so far (pino JSON), and stderr text. */
  output: () => { lines: string[]; stderr: string };
  /** Resolves with the exit code or signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: (signal: NodeJS.Signals) => void;
};

/** Where to start it: its port and the service's environment variables. */
export type ServiceOptions = { port: number; env: Record<string, string>; readyTimeoutMs?: number };

const SERVICE_ENV_NOT_INHERITED = [
  'DATABASE_URL',
  'PORT',
  'HOST',
  'DATA_DIR',
  'EMBEDDED_PG_PORT',
  'LOG_LEVEL',
  'LOG_FORMAT',
];

/**
 * Spawns `node --import tsx app/main.ts` and resolves once it logs "listening"; rejects
 * with its output when it exits first or does not listen within `readyTimeoutMs`.
 */
export async function startService(options: ServiceOptions): Promise<ServiceProcess> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !SERVICE_ENV_NOT_INHERITED.includes(k)),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'app/main.ts'], {
    env: {
      ...inherited,
      HOST: '127.0.0.1',
      PORT: String(options.port),
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      NODE_ENV: 'production',
      // the embedded MQTT broker on any free port: 1884 may be taken (issue #18)
      MQTT_PORT: '0',
      // one process (the crash and outage drills kill it); the cluster tests pass WORKERS
      WORKERS: '1',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  let listening: (() => void) | null = null;
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString();
    let newline: number;
    while ((newline = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, newline);
      partial = partial.slice(newline + 1);
      lines.push(line);
      if (listening !== null && /"msg":"listening on /.test(line)) listening();
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const describe = () => `${lines.slice(-30).join('\n')}\n${stderr.slice(-3000)}`;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`the service did not listen within ${options.readyTimeoutMs ?? 120_000} ms:\n${describe()}`)),
      options.readyTimeoutMs ?? 120_000,
    );
    listening = () => {
      clearTimeout(timer);
      listening = null;
      resolve();
    };
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (${code ?? signal}) before listening:\n${describe()}`));
    });
  });
  return {
    child,
    pid: child.pid!,
    baseUrl: `http://127.0.0.1:${options.port}`,
    output: () => ({ lines, stderr }),
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** SIGTERM (graceful shutdown), then SIGKILL after `graceMs`; resolves when it has exited. */
export async function stopService(
  service: ServiceProcess,
  graceMs = 30_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  service.kill('SIGTERM');
  const timer = setTimeout(() => service.kill('SIGKILL'), graceMs);
  try {
    return await service.exited;
  } finally {
    clearTimeout(timer);
  }
}
