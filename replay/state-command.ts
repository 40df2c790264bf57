// `replay state <uuid> --at <instant>`: a device's state at an instant.
import { replayState } from '../domain/replay/service.ts';
import {
  type Command,
  commonHelp,
  commonOptions,
  deviceArgument,
  printJson,
  requiredInstant,
  withSource,
} from './command.ts';
import { stateText } from './text.ts';

const usage = 'state <uuid> --at <instant> [--json] [--fixture <file>]';

/** The state command. */
export const stateCommand: Command = {
  name: 'state',
  summary:
    'The state of a device at an instant: identity, active flag, target (version, apps, config), what it reported (apps, system, resources), drift and when it was last seen.',
  usage,
  help: `options:
  --at <instant>     the instant: ISO-8601 with a time zone, a date (UTC midnight), "now", or "-2h" before now
${commonHelp}

An instant before the device registered is an error (exit code 1) that says when it registered.

example:
  npm run replay -- state 12345678-1234-1234-1234-123456789abc --at 2026-03-02T03:12:00Z`,
  options: { ...commonOptions, at: { type: 'string' } },
  positionals: 1,
  async run(ctx, values, positionals) {
    return withSource(ctx, values, async (source) => {
      const uuid = await deviceArgument(source, positionals, usage);
      const at = requiredInstant(values, 'at', source.now, usage);
      const { view } = await replayState(source, uuid, at);
      if (values['json'] === true) printJson(ctx, view);
      else ctx.stdout.write(`${stateText(view, ctx.stdout.isTTY)}\n`);
      return 0;
    });
  },
};
