// What every replay command shares: its shape, flag parsing with clear errors, instants
// ("2026-03-02T08:00:00Z", "2026-03-02", "now", "-2h"), and opening the source (the
// service's database, or --fixture files).
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { DatabasePool } from 'slonik';
import type { ReplaySource } from '../domain/replay/source.ts';
import { parseDuration } from '../domain/replay/time.ts';
import { UUID_PATTERN as UUID } from '../domain/ids.ts';

/** A failure the user can fix; `code` 2 for usage errors, 1 for "no such thing". */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** A source and how to let go of it; `pool` when the source is the database (verify reads it directly). */
export type OpenedSource = { source: ReplaySource; close: () => Promise<void>; pool?: DatabasePool };

/** Where output goes and how sources open; injected so commands stay testable. */
export type CommandContext = {
  stdout: { write: (text: string) => unknown; isTTY?: boolean | undefined };
  stderr: { write: (text: string) => unknown; isTTY?: boolean | undefined };
  openDatabase: () => Promise<OpenedSource>;
  openFixtures: (files: readonly string[]) => Promise<OpenedSource>;
};

type Options = NonNullable<ParseArgsConfig['options']>;

/** One replay command. */
export type Command = {
  name: string;
  summary: string;
  usage: string;
  /** Lines after the usage in `--help`: what it does, its options, an example. */
  help: string;
  options: Options;
  /** Positional arguments allowed. */
  positionals: number;
  run: (
    ctx: CommandContext,
    values: Record<string, string | boolean | string[] | undefined>,
    positionals: string[],
  ) => Promise<number>;
};

/** Options every read command takes. */
export const commonOptions: Options = {
  json: { type: 'boolean' },
  fixture: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
};

/** Help lines for the common options. */
export const commonHelp =
  `  --fixture <file>   read this NDJSON fixture (or .ndjson.gz archive) instead of the database; repeatable
  --json             print JSON for scripts instead of text
  -h, --help         this help`;

/** Parses argv for a command, turning node's errors into usage errors. */
export function parseCommandArgs(command: Command, argv: string[]) {
  // "--since -7d": node would read "-7d" as flags; a value that looks like a negative duration is the flag's value
  const args: string[] = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : null;
    if (name !== null && command.options[name]?.type === 'string' && next !== undefined && /^-\d+[a-z]/.test(next)) {
      args.push(`${arg}=${next}`);
      i += 1;
    } else args.push(arg);
  }
  try {
    const parsed = parseArgs({ args, options: command.options, allowPositionals: true, strict: true });
    if (parsed.positionals.length > command.positionals && parsed.values['help'] !== true) {
      throw new CliError(
        `${command.name}: unexpected argument "${parsed.positionals[command.positionals]}"\nusage: ${command.usage}`,
      );
    }
    return parsed as { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`${command.name}: ${(error as Error).message}\nusage: ${command.usage}`);
  }
}

/** The full help text of a command. */
export const helpText = (command: Command): string =>
  `usage: npm run replay -- ${command.usage}\n\n${command.summary}\n\n${command.help}\n`;

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/;

/**
 * An instant from the command line: ISO-8601 with a time zone, a date (UTC midnight), "now",
 * or "-<duration>" before now ("-2h", "-7d"). Returned as a UTC ISO string.
 */
export function parseInstant(text: string, flag: string, now: () => string): string {
  const value = text.trim();
  if (value === 'now') return now();
  if (value.startsWith('-')) {
    const ms = parseDuration(value.slice(1));
    if (ms === null) throw new CliError(`${flag}: "${text}" is not a duration before now (e.g. -2h, -30m, -7d)`);
    return new Date(Date.parse(now()) - ms).toISOString();
  }
  if (/^\d{4}-\d\d-\d\d$/.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`))) {
    return new Date(`${value}T00:00:00Z`).toISOString();
  }
  if (/^\d{4}-\d\d-\d\dT[\d:.]+$/.test(value)) {
    throw new CliError(`${flag}: "${text}" has no time zone; add one, e.g. ${value}Z`);
  }
  if (!ISO.test(value) || Number.isNaN(Date.parse(value))) {
    throw new CliError(
      `${flag}: "${text}" is not an instant; use ISO-8601 with a time zone (2026-03-02T08:15:00Z), a date, "now" or "-2h"`,
    );
  }
  return new Date(value).toISOString();
}

/** An optional instant flag. */
export function optionalInstant(values: Record<string, unknown>, name: string, now: () => string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? parseInstant(value, `--${name}`, now) : undefined;
}

/** A required instant flag. */
export function requiredInstant(
  values: Record<string, unknown>,
  name: string,
  now: () => string,
  usage: string,
): string {
  const value = optionalInstant(values, name, now);
  if (value === undefined) throw new CliError(`--${name} <instant> is required\nusage: ${usage}`);
  return value;
}

/** The device uuid argument; with a single-device fixture it may be left out. */
export async function deviceArgument(source: ReplaySource, positionals: string[], usage: string): Promise<string> {
  const given = positionals[0];
  if (given !== undefined) {
    if (!UUID.test(given)) {
      throw new CliError(`"${given}" is not a device uuid (8-4-4-4-12 hex digits)\nusage: ${usage}`);
    }
    return given.toLowerCase();
  }
  const devices = await source.devices();
  if (devices.length === 1) return devices[0]!.uuid;
  throw new CliError(
    `give the device uuid${devices.length > 1 ? ` (the source holds ${devices.length} devices)` : ''}\nusage: ${usage}`,
  );
}

/** Opens the source the flags ask for, runs `body` (given the source, and how it was opened), and always closes it. */
export async function withSource<T>(
  ctx: CommandContext,
  values: Record<string, unknown>,
  body: (source: ReplaySource, opened: OpenedSource) => Promise<T>,
): Promise<T> {
  const fixtures = values['fixture'];
  const opened = Array.isArray(fixtures) && fixtures.length > 0
    ? await ctx.openFixtures(fixtures as string[])
    : await ctx.openDatabase();
  try {
    return await body(opened.source, opened);
  } finally {
    await opened.close();
  }
}

/**
 * `--logs <window>` (issue #15): a duration such as 5m, or undefined when not given; device
 * logs live in the database only, so a fixture source is a usage error.
 */
export function logsWindow(values: Record<string, unknown>, opened: OpenedSource, usage: string): number | undefined {
  const value = values['logs'];
  if (typeof value !== 'string') return undefined;
  const ms = parseDuration(value);
  if (ms === null || ms <= 0) {
    throw new CliError(`--logs: "${value}" is not a duration such as 30s, 5m or 1h\nusage: ${usage}`);
  }
  if (opened.pool === undefined) {
    throw new CliError('--logs: device logs are in the database; a fixture holds events only (leave out --fixture)');
  }
  return ms;
}

/** Writes a value as pretty JSON. */
export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
