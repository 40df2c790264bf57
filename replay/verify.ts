// `replay verify [--aggregate <id>] [--since <instant>]`: recomputes every event's hash from
// the one before it and reports each aggregate's first broken link; exit code 1 if any.
import { readHorizon } from '../infra/event-store/retention-horizon.ts';
import { verifyChains } from '../infra/event-store/verify.ts';
import { CliError, type Command, optionalInstant, printJson } from './command.ts';
import { progressBar } from './progress.ts';
import { palette } from './text.ts';

const usage = 'verify [--aggregate <id>] [--since <instant>] [--json]';

/** The verify command. */
export const verifyCommand: Command = {
  name: 'verify',
  summary:
    'Checks the tamper-evidence hash chain of every aggregate (devices, provisioning keys): each event must hash, with the hash of the event before it, to its stored hash. Prints the first event that does not match per aggregate and why (altered, gap, reordered, head mismatch); exit code 1 if any.',
  usage,
  help: `options:
  --aggregate <id>   check one aggregate (a device uuid or a provisioning key id)
  --since <instant>  check only events from this instant on (each chain starts from the stored hash before it)
  --json             print the result as JSON
  -h, --help         this help

The first event of a stream chains from a fixed genesis value; after retention dropped the
start of a stream, from the hash retention recorded for the last dropped event (its anchor).
Reads the service's database (DATABASE_URL, else the embedded server). A progress bar is
drawn on a terminal.

example:
  npm run replay -- verify --since -7d`,
  options: {
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    aggregate: { type: 'string' },
    since: { type: 'string' },
  },
  positionals: 0,
  async run(ctx, values) {
    const aggregate = typeof values['aggregate'] === 'string' ? values['aggregate'].trim() : undefined;
    if (aggregate === '') throw new CliError(`--aggregate needs an id\nusage: ${usage}`);
    const opened = await ctx.openDatabase();
    try {
      const since = optionalInstant(values, 'since', opened.source.now);
      if (opened.pool === undefined) throw new CliError('verify needs the database', 1);
      const pool = opened.pool;
      const bar = progressBar(ctx, 'verifying');
      const result = await verifyChains(pool, { aggregate, since, onProgress: bar.update }).finally(bar.done);
      const horizon = (await readHorizon(pool))?.horizon ?? null;
      if (values['json'] === true) {
        printJson(ctx, { ...result, ok: result.breaks.length === 0, retention_horizon: horizon });
      } else {
        const c = palette(ctx.stdout.isTTY);
        const scope = `${result.events} event(s) of ${result.aggregates} aggregate(s)${
          since === undefined ? '' : ` since ${since}`
        }${aggregate === undefined ? '' : ` (aggregate ${aggregate})`}`;
        if (result.breaks.length === 0) {
          ctx.stdout.write(
            `${c.green('ok')}: verified ${scope}: every chain is intact${
              horizon === null ? '' : ` (retention horizon ${horizon})`
            }\n`,
          );
        } else {
          for (const b of result.breaks) {
            ctx.stdout.write(`${c.red('BROKEN')} ${b.aggregate_type} ${b.aggregate_id}: ${b.reason}: ${b.message}\n`);
          }
          ctx.stdout.write(`${c.red(`${result.breaks.length} broken chain(s)`)} in ${scope}\n`);
        }
      }
      return result.breaks.length === 0 ? 0 : 1;
    } finally {
      await opened.close();
    }
  },
};
