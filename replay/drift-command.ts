// `replay drift <uuid> [--since T] [--until T]`: every interval out of sync, and reconciliation delays.
import { describeDrift, shortTime } from '../domain/replay/describe.ts';
import type { DriftReport } from '../domain/replay/drift.ts';
import { replayDrift } from '../domain/replay/service.ts';
import { formatDuration, percentile } from '../domain/replay/time.ts';
import {
  type Command,
  commonHelp,
  commonOptions,
  deviceArgument,
  optionalInstant,
  printJson,
  withSource,
} from './command.ts';
import { palette, table } from './text.ts';

const usage = 'drift <uuid> [--since <instant>] [--until <instant>] [--json] [--fixture <file>]';

/** A drift report as text. */
export function driftText(
  report: DriftReport & { device: { device_name: string; uuid: string } },
  tty: boolean | undefined,
): string {
  const c = palette(tty);
  const window = `${report.since === null ? 'registration' : shortTime(report.since)} → ${shortTime(report.until)}`;
  const lines = [`${c.bold(report.device.device_name)} ${report.device.uuid}: drift from ${window}`];
  if (report.intervals.length === 0) lines.push(c.green('never out of sync in this window'));
  else {
    lines.push(
      `${report.intervals.length} interval(s) out of sync, ${formatDuration(report.totals.out_of_sync_ms)} in total${
        report.totals.window_ms === null
          ? ''
          : ` (${
            ((report.totals.out_of_sync_ms / Math.max(1, report.totals.window_ms)) * 100).toFixed(1)
          }% of the window)`
      }, longest ${formatDuration(report.totals.longest_ms)}`,
      '',
    );
    lines.push(
      table(
        ['#', 'start', 'end', 'duration', 'what differed when it started', 'ended by'],
        report.intervals.map((i, n) => [
          String(n + 1),
          `${shortTime(i.start)}${i.started_by === null ? ' (before window)' : ''}`,
          i.end === null ? c.red('ongoing') : shortTime(i.end),
          formatDuration(i.duration_ms),
          describeDrift(i.differed).join('; ') || '—',
          i.ended_by === null ? '—' : `${i.ended_by.event_type} v${i.ended_by.version}`,
        ]),
      ),
    );
  }
  lines.push('', c.bold('Reconciliation (target update → first instant in sync with that version)'));
  if (report.reconciliations.length === 0) lines.push(c.dim('no target update in this window'));
  else {
    lines.push(table(
      ['target', 'set at', 'by', 'outcome', 'delay'],
      report.reconciliations.map((r) => [
        `v${r.target_version}`,
        shortTime(r.set_at),
        r.set_by.actor ?? '—',
        r.status === 'converged'
          ? c.green('converged')
          : r.status === 'pending'
          ? c.red('pending')
          : c.dim('superseded'),
        r.delay_ms !== null
          ? formatDuration(r.delay_ms)
          : r.waiting_ms !== null
          ? `${formatDuration(r.waiting_ms)} so far`
          : '—',
      ]),
    ));
    const delays = report.reconciliations.flatMap((r) => (r.delay_ms === null ? [] : [r.delay_ms]));
    if (delays.length > 1) {
      lines.push(
        c.dim(`delay p50 ${formatDuration(percentile(delays, 50)!)}, max ${formatDuration(Math.max(...delays))}`),
      );
    }
  }
  lines.push(
    '',
    report.in_sync_at_end
      ? c.green(`in sync at ${shortTime(report.until)}`)
      : c.red(`OUT OF SYNC at ${shortTime(report.until)}`),
  );
  return lines.join('\n');
}

/** The drift command. */
export const driftCommand: Command = {
  name: 'drift',
  summary:
    'Every interval in which the device was out of sync with its target: start, end (or ongoing), duration, what differed when it started, which event ended it; plus each reconciliation delay (target update → first instant in sync with that version).',
  usage,
  help: `options:
  --since <instant>  start of the window (default: the device's registration)
  --until <instant>  end of the window (default: now; with --fixture, its last event)
${commonHelp}

An interval that began before --since is shown with its real start; durations of ongoing
intervals run to --until.

example:
  npm run replay -- drift 12345678-1234-1234-1234-123456789abc --since -7d`,
  options: { ...commonOptions, since: { type: 'string' }, until: { type: 'string' } },
  positionals: 1,
  async run(ctx, values, positionals) {
    return withSource(ctx, values, async (source) => {
      const uuid = await deviceArgument(source, positionals, usage);
      const report = await replayDrift(source, uuid, {
        since: optionalInstant(values, 'since', source.now),
        until: optionalInstant(values, 'until', source.now),
      });
      if (values['json'] === true) printJson(ctx, report);
      else ctx.stdout.write(`${driftText(report, ctx.stdout.isTTY)}\n`);
      return 0;
    });
  },
};
