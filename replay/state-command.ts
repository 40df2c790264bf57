// `replay state <uuid> --at <instant>`: a device's state at an instant.
import { replayState } from '../domain/replay/service.ts';
import { readLogsAround } from '../infra/telemetry/device-logs.ts';
import {
  type Command,
  commonHelp,
  commonOptions,
  deviceArgument,
  logsWindow,
  printJson,
  requiredInstant,
  withSource,
} from './command.ts';
import { type LogsAround, logsText, stateText } from './text.ts';

const usage = 'state <uuid> --at <instant> [--logs <window>] [--json] [--fixture <file>]';

/** Most log lines `--logs` shows (the nearest to the instant). */
const LOG_LINES = 200;

/** The state command. */
export const stateCommand: Command = {
  name: 'state',
  summary:
    'The state of a device at an instant: identity, active flag, target (version, apps, config), what it reported (apps, system, resources), drift and when it was last seen.',
  usage,
  help: `options:
  --at <instant>     the instant: ISO-8601 with a time zone, a date (UTC midnight), "now", or "-2h" before now
  --logs <window>    also what the device logged within this long either side of the instant (e.g. 5m;
                     the ${LOG_LINES} nearest lines), from the device_logs table: the database only, not --fixture
${commonHelp}

An instant before the device registered is an error (exit code 1) that says when it registered.

example:
  npm run replay -- state 12345678-1234-1234-1234-123456789abc --at 2026-03-02T03:12:00Z
  npm run replay -- state 12345678-1234-1234-1234-123456789abc --at 2026-03-02T03:12:00Z --logs 5m`,
  options: { ...commonOptions, at: { type: 'string' }, logs: { type: 'string' } },
  positionals: 1,
  async run(ctx, values, positionals) {
    return withSource(ctx, values, async (source, opened) => {
      const windowMs = logsWindow(values, opened, usage);
      const uuid = await deviceArgument(source, positionals, usage);
      const at = requiredInstant(values, 'at', source.now, usage);
      const { view } = await replayState(source, uuid, at);
      let logs: LogsAround | undefined;
      if (windowMs !== undefined && opened.pool !== undefined) {
        logs = { at, window_ms: windowMs, ...await readLogsAround(opened.pool, uuid, at, windowMs, LOG_LINES) };
      }
      if (values['json'] === true) printJson(ctx, logs === undefined ? view : { ...view, logs });
      else {
        ctx.stdout.write(`${stateText(view, ctx.stdout.isTTY)}\n`);
        if (logs !== undefined) ctx.stdout.write(`${logsText(logs, ctx.stdout.isTTY)}\n`);
      }
      return 0;
    });
  },
};
