// `npm run replay -- <command>`: time travel over the event log for engineers. Reads the
// service's database (DATABASE_URL, else the embedded server under DATA_DIR) or, with
// --fixture, NDJSON files and no database at all. `--help` on every command. It only reads:
// a database whose schema is behind is refused, naming `npm run migrate`, not migrated.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCliDatabase, SchemaBehindError } from '../app/cli/cli-database.ts';
import { createReplayQueries } from '../infra/replay/queries.ts';
import { ReplayError } from '../domain/replay/source.ts';
import { analyticsCommand } from './analytics-command.ts';
import { checkCommand } from './check-command.ts';
import { CliError, type Command, type CommandContext, helpText, parseCommandArgs } from './command.ts';
import { diffCommand } from './diff-command.ts';
import { driftCommand } from './drift-command.ts';
import { exportCommand } from './export-command.ts';
import { fleetCommand } from './fleet-command.ts';
import { FixtureError, openFixtures } from '../infra/replay/fixture-source.ts';
import { createSecretHasher } from '../infra/secrets/hasher.ts';
import { stateCommand } from './state-command.ts';
import { timelineCommand } from './timeline-command.ts';
import { verifyCommand } from './verify.ts';

const commands: Command[] = [
  stateCommand,
  diffCommand,
  driftCommand,
  fleetCommand,
  timelineCommand,
  exportCommand,
  analyticsCommand,
  checkCommand,
  verifyCommand,
];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `usage: npm run replay -- <command> [options]

A device's state at any instant, rebuilt with the same fold the API uses.

commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.usage.slice(c.name.length + 1)}`).join('\n')}

Instants: ISO-8601 with a time zone (2026-03-02T03:12:00Z), a date (UTC midnight), "now",
or "-2h" / "-7d" before now. Every command but check reads the service's database, or
--fixture <file.ndjson> instead. Run \`npm run replay -- <command> --help\` for details.
`;
}

/** The context of a real run: process streams, the service's database, fixture files. */
export const processContext: CommandContext = {
  stdout: process.stdout,
  stderr: process.stderr,
  async openDatabase() {
    const db = await openCliDatabase((line) => process.stderr.write(`${line}\n`), { migrations: 'require' });
    return { source: createReplayQueries(db.pool), close: db.close, pool: db.pool };
  },
  async openFixtures(files) {
    // a key of this run: a fixture's secret values are shown as markers, comparable within the run
    const hasher = createSecretHasher(randomBytes(32));
    return { source: await openFixtures(files, hasher.hash), close: async () => {} };
  },
};

async function dispatch(argv: string[], ctx: CommandContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const about = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined;
    ctx.stdout.write(about === undefined ? overview() : helpText(about));
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (command === undefined) throw new CliError(`unknown command "${name}"\n\n${overview()}`);
  const { values, positionals } = parseCommandArgs(command, rest);
  if (values['help'] === true) {
    ctx.stdout.write(helpText(command));
    return 0;
  }
  return command.run(ctx, values, positionals);
}

/** Runs one replay command line; returns the exit code (errors are written to stderr). */
export async function runCli(argv: string[], ctx: CommandContext): Promise<number> {
  try {
    return await dispatch(argv, ctx);
  } catch (error) {
    if (error instanceof CliError) {
      ctx.stderr.write(`replay: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof ReplayError || error instanceof FixtureError || error instanceof SchemaBehindError) {
      ctx.stderr.write(`replay: ${error.message}\n`);
      return 1;
    }
    ctx.stderr.write(`replay: failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    return 1;
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await runCli(process.argv.slice(2), processContext);
}
