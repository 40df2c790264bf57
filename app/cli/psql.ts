// `npm run psql [-- psql args]`: psql on the service's database. Uses the system psql
// when installed; otherwise a minimal built-in client that understands -c, -f, -A, -t
// and reads SQL from stdin, so the seed's queries run on a machine without psql.
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../database-target.ts';
import { Buffer } from 'node:buffer';

const args = process.argv.slice(2);
const target = await openDatabase(loadConfig(), () => {});
let code = 0;
try {
  const hasPsql = spawnSync('psql', ['--version'], { stdio: 'ignore' }).status === 0;
  if (hasPsql) {
    code = await new Promise<number>((resolve) => {
      const child = spawn('psql', [target.url, ...args], { stdio: 'inherit' });
      child.on('exit', (c) => resolve(c ?? 1));
    });
  } else {
    code = await builtinClient(target.url, args);
  }
} finally {
  await target.stop();
}
process.exit(code);

async function builtinClient(url: string, argv: string[]): Promise<number> {
  let unaligned = false;
  let tuplesOnly = false;
  const commands: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i]!;
    if (a === '-A' || a === '--no-align') unaligned = true;
    else if (a === '-t' || a === '--tuples-only') tuplesOnly = true;
    else if (/^-[At]+$/.test(a)) {
      unaligned ||= a.includes('A');
      tuplesOnly ||= a.includes('t');
    } else if (a === '-c' || a === '--command') commands.push(argv[++i] ?? '');
    else if (a === '-f' || a === '--file') commands.push(await readFile(argv[++i] ?? '', 'utf8'));
    else if (a === '-X' || a === '-q') continue;
    else {
      console.error(`psql (built-in): unsupported argument ${a}; install psql for the full client`);
      return 2;
    }
  }
  if (commands.length === 0) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    commands.push(Buffer.concat(chunks).toString('utf8'));
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const text of commands) {
      const results = await client.query(text);
      for (const result of Array.isArray(results) ? results : [results]) print(result, unaligned, tuplesOnly);
    }
    return 0;
  } catch (error) {
    console.error(`ERROR:  ${(error as Error).message}`);
    return 1;
  } finally {
    await client.end();
  }
}

function print(result: pg.QueryResult, unaligned: boolean, tuplesOnly: boolean): void {
  if (result.fields.length === 0) {
    if (!tuplesOnly) console.log(result.command);
    return;
  }
  const names = result.fields.map((f) => f.name);
  const rows = result.rows.map((r: Record<string, unknown>) => names.map((n) => format(r[n])));
  if (unaligned) {
    if (!tuplesOnly) console.log(names.join('|'));
    for (const row of rows) console.log(row.join('|'));
  } else {
    const widths = names.map((n, i) => Math.max(n.length, ...rows.map((r) => r[i]!.length)));
    if (!tuplesOnly) {
      console.log(names.map((n, i) => ` ${n.padEnd(widths[i]!)} `).join('|'));
      console.log(widths.map((w) => '-'.repeat(w + 2)).join('+'));
    }
    for (const row of rows) console.log(row.map((v, i) => ` ${v.padEnd(widths[i]!)} `).join('|'));
  }
  if (!tuplesOnly) console.log(`(${rows.length} row${rows.length === 1 ? '' : 's'})`);
}

function format(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
