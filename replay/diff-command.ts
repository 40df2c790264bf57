// `replay diff <uuid> --from <T1> --to <T2>`: what changed between two instants, and which events did it.
import { compact, shortTime } from '../domain/replay/describe.ts';
import type { DiffReport, KeyDiff } from '../domain/replay/diff.ts';
import { replayDiff } from '../domain/replay/service.ts';
import { formatDuration } from '../domain/replay/time.ts';
import {
  type Command,
  commonHelp,
  commonOptions,
  deviceArgument,
  printJson,
  requiredInstant,
  withSource,
} from './command.ts';
import { palette } from './text.ts';

const usage = 'diff <uuid> --from <instant> --to <instant> [--json] [--fixture <file>]';
const MAX_LINES = 60;

const keys = (d: KeyDiff) =>
  [...d.added.map((k) => `+${k}`), ...d.removed.map((k) => `-${k}`), ...d.changed.map((k) => `~${k}`)].join('  ');
const empty = (d: KeyDiff) => d.added.length + d.removed.length + d.changed.length === 0;

/** A diff report as text. */
export function diffText(
  report: DiffReport & { device: { device_name: string; uuid: string } },
  tty: boolean | undefined,
): string {
  const c = palette(tty);
  const s = report.summary;
  const lines = [
    `${c.bold(report.device.device_name)} ${report.device.uuid}: ${shortTime(report.from)} → ${shortTime(report.to)} (${
      formatDuration(Date.parse(report.to) - Date.parse(report.from))
    })`,
  ];
  if (!s.existed_before) {
    lines.push(c.yellow('the device did not exist yet at the first instant: everything below was added'));
  }
  if (s.target_version !== null) {
    lines.push(`${c.bold('Target')}     v${s.target_version.before ?? '–'} → v${s.target_version.after ?? '–'}`);
  }
  if (!empty(s.target_apps)) lines.push(`  apps       ${keys(s.target_apps)}`);
  for (const svc of s.target_services) {
    lines.push(
      `  app ${svc.app_id} services ${
        [
          ...svc.added.map((n) => `+${n}`),
          ...svc.removed.map((n) => `-${n}`),
          ...svc.changed.map((ch) => `~${ch.service} (${ch.fields.join(', ')})`),
        ].join('  ')
      }`,
    );
  }
  if (!empty(s.config)) lines.push(`  config     ${keys(s.config)}`);
  if (s.is_active !== null) {
    lines.push(
      `${c.bold('Active')}     ${String(s.is_active.before ?? '–')} → ${
        s.is_active.after ? c.green('true') : c.red('false')
      }`,
    );
  }
  if (!empty(s.reported_apps)) lines.push(`${c.bold('Reported')}   apps ${keys(s.reported_apps)}`);
  if (s.in_sync !== null) {
    lines.push(
      `${c.bold('Sync')}       ${s.in_sync.before ? 'in sync' : 'out of sync'} → ${
        s.in_sync.after ? c.green('in sync') : c.red('OUT OF SYNC')
      }`,
    );
  }
  if (report.changes.length === 0) lines.push(c.dim('no change in state'));
  else {
    lines.push('', c.bold(`Changes (${report.changes.length})`));
    for (const change of report.changes.slice(0, MAX_LINES)) {
      const by = change.caused_by.map((e) => `${e.event_type} v${e.version}`).join(', ');
      lines.push(
        `  ${change.path}: ${change.before === undefined ? '∅' : compact(change.before, 50)} → ${
          change.after === undefined ? '∅' : compact(change.after, 50)
        }${by === '' ? '' : c.dim(`  ← ${by}`)}`,
      );
    }
    if (report.changes.length > MAX_LINES) {
      lines.push(c.dim(`  … ${report.changes.length - MAX_LINES} more (use --json)`));
    }
  }
  lines.push('', c.bold(`Events in the interval (${report.events.length})`));
  for (const e of report.events.slice(0, MAX_LINES)) {
    lines.push(
      `  ${shortTime(e.timestamp)}  v${e.version}  ${e.event_type}${e.actor === null ? '' : ` by ${e.actor}`}${
        c.dim(
          e.changed.length === 0
            ? '  (no state change)'
            : `  → ${e.changed.slice(0, 6).join(', ')}${e.changed.length > 6 ? ', …' : ''}`,
        )
      }`,
    );
  }
  if (report.events.length > MAX_LINES) lines.push(c.dim(`  … ${report.events.length - MAX_LINES} more (use --json)`));
  return lines.join('\n');
}

/** The diff command. */
export const diffCommand: Command = {
  name: 'diff',
  summary:
    'What changed in a device between two instants (target version, apps added/removed/changed, services, config, active flag, reported apps, sync), and which events caused each change.',
  usage,
  help: `options:
  --from <instant>   the first instant (may be before the device existed)
  --to <instant>     the second instant
${commonHelp}

example:
  npm run replay -- diff 12345678-1234-1234-1234-123456789abc --from -2h --to now`,
  options: { ...commonOptions, from: { type: 'string' }, to: { type: 'string' } },
  positionals: 1,
  async run(ctx, values, positionals) {
    return withSource(ctx, values, async (source) => {
      const uuid = await deviceArgument(source, positionals, usage);
      const from = requiredInstant(values, 'from', source.now, usage);
      const to = requiredInstant(values, 'to', source.now, usage);
      const report = await replayDiff(source, uuid, from, to);
      if (values['json'] === true) printJson(ctx, report);
      else ctx.stdout.write(`${diffText(report, ctx.stdout.isTTY)}\n`);
      return 0;
    });
  },
};
