// `npm test`: picks the PostgreSQL server (printed once), prepares a migrated template
// database, then runs ava with any extra arguments. Exit code is ava's.
//
// ava prints an unhandled rejection or uncaught exception where it happens, in the middle of
// hundreds of passing tests, and its summary only counts them (a failed test it describes
// again after the summary itself). The runner copies ava's output through and, after the
// summary, prints each such report again with its test file and stack, so the end of a CI log
// says what failed.
import type { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import process from 'node:process';
import { migrate } from '../infra/postgres/migrate.ts';
import { adminQuery, databaseUrl, TEMPLATE_DATABASE } from './helpers/database.ts';
import { startScratchServer } from '../infra/postgres/scratch-server.ts';

/** Lines of ava's output that open a report worth repeating after the summary. */
const REPORT_TITLE = /^\s*(?:\S+\s)?(?:Unhandled rejection in |Uncaught exception in |Error in shared worker)/u;
/** Lines that end such a report: the next test line, the next report, the summary rule. */
const REPORT_END = /^\s*(?:✔|✘|─$)|Unhandled rejection in |Uncaught exception in /u;
const REPORT_MAX_LINES = 60;

/** The reports in ava's output (ANSI colours removed), each up to REPORT_MAX_LINES lines. */
function failureReports(output: string): string[] {
  // deno-lint-ignore no-control-regex
  const lines = output.replace(/\u001b\[[0-9;]*m/gu, '').split('\n');
  const reports: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!REPORT_TITLE.test(lines[i]!)) continue;
    const block = [lines[i]!];
    let j = i + 1;
    for (; j < lines.length && !REPORT_END.test(lines[j]!); j++) {
      if (block.length < REPORT_MAX_LINES) block.push(lines[j]!);
    }
    reports.push(block.join('\n').trimEnd());
    i = j - 1;
  }
  return reports;
}

const server = await startScratchServer(process.env, (line) => console.log(`\n${line}\n`));
let code = 1;
try {
  await adminQuery(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`, server.adminUrl);
  await adminQuery(`CREATE DATABASE ${TEMPLATE_DATABASE}`, server.adminUrl);
  await migrate(databaseUrl(TEMPLATE_DATABASE, server.adminUrl));
  let output = '';
  code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.mjs', ...process.argv.slice(2)], {
      stdio: ['inherit', 'pipe', 'pipe'],
      env: {
        ...process.env,
        DEVICETRAIL_TEST_SERVER_URL: server.adminUrl,
        ...(process.stdout.isTTY && process.env['FORCE_COLOR'] === undefined ? { FORCE_COLOR: '1' } : {}),
      },
    });
    // a decoder per stream: a character split between two chunks is decoded whole
    const stdout = new StringDecoder('utf8');
    const stderr = new StringDecoder('utf8');
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      output += stdout.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      output += stderr.write(chunk);
    });
    child.on('close', (c, signal) => {
      output += stdout.end() + stderr.end();
      resolve(c ?? (signal ? 1 : 0));
    });
  });
  const reports = failureReports(output);
  if (reports.length > 0) {
    console.log(`\n${reports.length} failure report(s) from the run above, repeated:\n`);
    for (const report of reports) console.log(`${report}\n`);
  }
} finally {
  await adminQuery(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
}
process.exit(code);
