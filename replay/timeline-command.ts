// `replay timeline <uuid> [--since T] [--until T] --html <file>`: the self-contained timeline page.
import { driftReport } from '../domain/replay/drift.ts';
import { replayHistory } from '../domain/replay/service.ts';
import { renderTimeline } from '../app/html/timeline.ts';
import { timelineLogs } from '../app/html/timeline-logs.ts';
import { writePrivateFile } from '../app/cli/private-file.ts';
import {
  CliError,
  type Command,
  commonHelp,
  commonOptions,
  deviceArgument,
  logsWindow,
  optionalInstant,
  printJson,
  withSource,
} from './command.ts';
import { Buffer } from 'node:buffer';

const usage =
  'timeline <uuid> [--since <instant>] [--until <instant>] [--logs <window>] --html <file> [--fixture <file>]';

/** The timeline command. */
export const timelineCommand: Command = {
  name: 'timeline',
  summary:
    'Writes one self-contained HTML file (inline SVG and CSS, no network) showing target versions, reports, sync with drift intervals shaded, enabled/disabled, connectivity and other events over time, with details on hover.',
  usage,
  help: `options:
  --html <file>      where to write the page ("-" for stdout); mode 0600, a symlink there is replaced, not followed
  --since <instant>  start of the window (default: the device's registration)
  --until <instant>  end of the window (default: now; with --fixture, its last event)
  --logs <window>    also what the device logged within this long of the start of each of its latest 10 drift
                     intervals (e.g. 5m), from the device_logs table: the database only, not --fixture
${
    commonHelp.replace(
      '  --json             print JSON for scripts instead of text\n',
      '  --json             print a JSON summary (file, intervals) instead of text\n',
    )
  }

example:
  npm run replay -- timeline 12345678-1234-1234-1234-123456789abc --since -24h --html timeline.html
  npm run replay -- timeline 12345678-1234-1234-1234-123456789abc --since -24h --logs 5m --html timeline.html`,
  options: {
    ...commonOptions,
    since: { type: 'string' },
    until: { type: 'string' },
    html: { type: 'string' },
    logs: { type: 'string' },
  },
  positionals: 1,
  async run(ctx, values, positionals) {
    const file = values['html'];
    if (typeof file !== 'string' || file === '') throw new CliError(`--html <file> is required\nusage: ${usage}`);
    return withSource(ctx, values, async (source, opened) => {
      const windowMs = logsWindow(values, opened, usage);
      const uuid = await deviceArgument(source, positionals, usage);
      const { device, history } = await replayHistory(source, uuid, {
        since: optionalInstant(values, 'since', source.now),
        until: optionalInstant(values, 'until', source.now),
      });
      const drift = driftReport(history);
      const html = renderTimeline({
        device,
        history,
        drift,
        generatedAt: new Date().toISOString(),
        sourceDescription: source.description,
        logs: windowMs === undefined || opened.pool === undefined
          ? undefined
          : await timelineLogs(opened.pool, uuid, drift, windowMs),
      });
      if (file === '-') {
        ctx.stdout.write(html);
        return 0;
      }
      await writePrivateFile(file, html).catch((error: NodeJS.ErrnoException) => {
        throw new CliError(`--html: cannot write ${file}: ${error.code ?? error.message}`, 1);
      });
      const summary = {
        file,
        bytes: Buffer.byteLength(html),
        events: history.steps.length,
        drift_intervals: drift.intervals.length,
        since: history.since,
        until: history.until,
      };
      if (values['json'] === true) printJson(ctx, summary);
      else {ctx.stdout.write(
          `wrote ${file} (${
            (summary.bytes / 1024).toFixed(1)
          } KiB): ${summary.events} events, ${summary.drift_intervals} drift interval(s)\n`,
        );}
      return 0;
    });
  },
};
