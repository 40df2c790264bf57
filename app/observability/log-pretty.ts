// A small human-readable form of pino's JSON lines, for a developer's terminal
// (pino-pretty is not a dependency): "12:00:01.234 INFO  message key=value …".

const COLORS: Record<string, string> = { trace: '90', debug: '36', info: '32', warn: '33', error: '31', fatal: '35' };
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'service']);

function scalar(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/** One JSON log line as a readable line; lines that are not JSON pass through. */
export function prettyLine(line: string, color: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = String(entry['level'] ?? 'info');
  const time = typeof entry['time'] === 'string' ? entry['time'].slice(11, 23) : '';
  const label = level.toUpperCase().padEnd(5);
  const head = color ? `\x1b[${COLORS[level] ?? '0'}m${label}\x1b[0m` : label;
  const err = entry['err'] as { message?: string; stack?: string } | undefined;
  const fields = Object.entries(entry)
    .filter(([k]) => !HIDDEN.has(k) && k !== 'err')
    .map(([k, v]) => `${color ? `\x1b[2m${k}=\x1b[0m` : `${k}=`}${scalar(v)}`);
  const stack = err?.stack === undefined
    ? (err?.message === undefined ? '' : `\n    ${err.message}`)
    : `\n    ${err.stack.split('\n').join('\n    ')}`;
  return `${time} ${head} ${String(entry['msg'] ?? '')}${fields.length > 0 ? `  ${fields.join(' ')}` : ''}${stack}\n`;
}

/** A pino destination that writes pretty lines to `out`. */
export function prettyStream(
  out: { write: (chunk: string) => unknown },
  color: boolean,
): { write: (chunk: string) => void } {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') out.write(prettyLine(line, color));
    },
  };
}
