// `replay fleet --at <T> [--fleet <id>]`: every device's sync status at an instant, with totals.
import { describeDrift, shortTime } from '../domain/replay/describe.ts';
import { type FleetStatus, replayFleet } from '../domain/replay/service.ts';
import { formatDuration } from '../domain/replay/time.ts';
import { type Command, commonHelp, commonOptions, printJson, requiredInstant, withSource } from './command.ts';
import { progressBar } from './progress.ts';
import { palette, table } from './text.ts';

const usage = 'fleet --at <instant> [--fleet <id>] [--json] [--fixture <file>]';

/** A fleet status as text. */
export function fleetText(status: FleetStatus, tty: boolean | undefined): string {
  const c = palette(tty);
  const t = status.totals;
  const rows = [...status.devices].sort((a, b) =>
    Number(a.in_sync) - Number(b.in_sync) || (b.out_of_sync_ms ?? 0) - (a.out_of_sync_ms ?? 0) ||
    a.device_name.localeCompare(b.device_name)
  );
  const lines = [
    `Fleet${status.fleet === null ? '' : ` ${status.fleet}`} at ${shortTime(status.at)}: ${t.devices} device(s), ${
      c.green(`${t.in_sync} in sync`)
    }, ${
      t.out_of_sync > 0 ? c.red(`${t.out_of_sync} out of sync`) : '0 out of sync'
    }, ${t.inactive} disabled, ${t.without_target} without target, ${t.never_reported} never reported`,
  ];
  if (rows.length > 0) {
    lines.push(
      '',
      table(
        ['device', 'uuid', 'fleet', 'active', 'target', 'sync', 'out of sync for', 'what differs'],
        rows.map((r) => [
          r.device_name,
          r.uuid,
          r.fleet_id,
          r.is_active ? 'yes' : c.red('no'),
          r.target_version === null ? '—' : `v${r.target_version}`,
          r.in_sync ? c.green('in sync') : c.red('OUT'),
          r.out_of_sync_ms === null ? '' : formatDuration(r.out_of_sync_ms),
          describeDrift(r.differed).join('; '),
        ]),
      ),
    );
  }
  return lines.join('\n');
}

/** The fleet command. */
export const fleetCommand: Command = {
  name: 'fleet',
  summary:
    "Every device's sync status at an instant, with totals (in sync, out of sync, disabled, without target, never reported).",
  usage,
  help: `options:
  --at <instant>     the instant
  --fleet <id>       only devices of this fleet
${commonHelp}

A progress bar is drawn on stderr when stdout is a terminal.

example:
  npm run replay -- fleet --at 2026-03-02T03:12:00Z --fleet fleet-1`,
  options: { ...commonOptions, at: { type: 'string' }, fleet: { type: 'string' } },
  positionals: 0,
  async run(ctx, values) {
    return withSource(ctx, values, async (source) => {
      const at = requiredInstant(values, 'at', source.now, usage);
      const bar = progressBar(ctx, 'replaying devices');
      const fleet = typeof values['fleet'] === 'string' ? values['fleet'] : undefined;
      const status = await replayFleet(source, at, { fleet, onProgress: bar.update }).finally(bar.done);
      if (values['json'] === true) printJson(ctx, status);
      else ctx.stdout.write(`${fleetText(status, ctx.stdout.isTTY)}\n`);
      return 0;
    });
  },
};
