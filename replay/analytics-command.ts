// `replay analytics [--window 24h]`: the seed's questions — target change rate, who reports
// most, reconciliation delays (p50/p90/p99/max), and who drifts now and for how long.
import { type Activity, type Analytics, computeAnalytics } from '../domain/replay/analytics.ts';
import { describeDrift, shortTime } from '../domain/replay/describe.ts';
import { formatDuration, parseDuration } from '../domain/replay/time.ts';
import { CliError, type Command, commonHelp, commonOptions, printJson, withSource } from './command.ts';
import { palette, table } from './text.ts';

const usage = 'analytics [--window <duration>] [--top <n>] [--json] [--fixture <file>]';

const d = (ms: number | null) => (ms === null ? '—' : formatDuration(ms));

function activityTable(a: Activity): string {
  if (a.top.length === 0) return '  none';
  return table(
    ['device', 'uuid', 'events', 'per hour', 'first', 'last'],
    a.top.map((
      t,
    ) => [t.device_name ?? '?', t.uuid, String(t.count), t.per_hour.toFixed(2), shortTime(t.first), shortTime(t.last)]),
  )
    .split('\n').map((l) => `  ${l}`).join('\n');
}

/** Analytics as text. */
export function analyticsText(a: Analytics, tty: boolean | undefined): string {
  const c = palette(tty);
  const r = a.reconciliation;
  const lines = [
    c.bold(
      `Analytics over ${formatDuration(a.window.duration_ms)}: ${shortTime(a.window.from)} → ${shortTime(a.window.to)}`,
    ),
    '',
    `${c.bold('Target state changes')}  ${a.target_changes.total} on ${a.target_changes.devices} device(s), ${
      a.target_changes.per_hour.toFixed(2)
    }/h`,
    activityTable(a.target_changes),
    '',
    `${c.bold('Reports')}  ${a.reports.total} current_state.updated from ${a.reports.devices} device(s), ${
      a.reports.per_hour.toFixed(2)
    }/h ${c.dim('(an identical report or a poll writes no event and is not counted)')}`,
    activityTable(a.reports),
    '',
    `${c.bold('Reconciliation delay')}  target update → first instant in sync with that version`,
    `  ${r.targets} target update(s): ${r.converged} converged, ${r.pending} pending, ${r.superseded} superseded`,
    `  p50 ${d(r.delay_ms.p50)} · p90 ${d(r.delay_ms.p90)} · p99 ${d(r.delay_ms.p99)} · max ${
      d(r.delay_ms.max)
    } · mean ${d(r.delay_ms.mean)}`,
    `  per transport ${
      c.dim(
        '(delivery: target update → first delivered over it; convergence: → the report over it that reached the target)',
      )
    }`,
    table(
      ['transport', 'delivered', 'delivery p50', 'p90', 'max', 'converged', 'convergence p50', 'p90', 'max'],
      (['http', 'mqtt'] as const).map((t) => {
        const s = r.by_transport[t];
        return [
          t,
          String(s.delivered),
          d(s.delivery_ms.p50),
          d(s.delivery_ms.p90),
          d(s.delivery_ms.max),
          String(s.converged),
          d(s.convergence_ms.p50),
          d(s.convergence_ms.p90),
          d(s.convergence_ms.max),
        ];
      }),
    ).split('\n').map((l) => `  ${l}`).join('\n'),
  ];
  if (r.slowest.length > 0) {
    lines.push(
      '  slowest:',
      table(
        ['device', 'uuid', 'target', 'set at', 'delay'],
        r.slowest.map((s) => [s.device_name, s.uuid, `v${s.target_version}`, shortTime(s.set_at), d(s.delay_ms)]),
      ).split('\n').map((l) => `  ${l}`).join('\n'),
    );
  }
  if (r.waiting.length > 0) {
    lines.push(
      '  still waiting:',
      table(
        ['device', 'uuid', 'target', 'set at', 'waiting'],
        r.waiting.map((s) => [s.device_name, s.uuid, `v${s.target_version}`, shortTime(s.set_at), d(s.waiting_ms)]),
      ).split('\n').map((l) => `  ${l}`).join('\n'),
    );
  }
  lines.push(
    '',
    `${c.bold('Drifting now')}  ${
      a.drifting_now.count === 0
        ? c.green('no device is out of sync')
        : c.red(`${a.drifting_now.count} device(s) out of sync`)
    } as of ${shortTime(a.drifting_now.as_of)}`,
  );
  if (a.drifting_now.devices.length > 0) {
    lines.push(
      table(
        ['device', 'uuid', 'since', 'for', 'what differs'],
        a.drifting_now.devices.map((x) => [
          x.device_name,
          x.uuid,
          x.drift_since === null ? '—' : shortTime(x.drift_since),
          d(x.for_ms),
          describeDrift(x.differed).join('; '),
        ]),
      ).split('\n').map((l) => `  ${l}`).join('\n'),
    );
  }
  return lines.join('\n');
}

/** The analytics command. */
export const analyticsCommand: Command = {
  name: 'analytics',
  summary:
    "The seed's analytics over a window ending now: how often target states change, which devices report most often, the reconciliation delay between a target update and the device reaching it (p50/p90/p99, max), and which devices drift now and for how long.",
  usage,
  help: `options:
  --window <duration>  the period before now to analyse: 90s, 15m, 24h, 7d, 2w (default 24h)
  --top <n>            rows in each "most" list (default 10)
${commonHelp}

With --fixture, "now" is the fixture's last event.

example:
  npm run replay -- analytics --window 7d`,
  options: { ...commonOptions, window: { type: 'string' }, top: { type: 'string' } },
  positionals: 0,
  async run(ctx, values) {
    const windowText = typeof values['window'] === 'string' ? values['window'] : '24h';
    const windowMs = parseDuration(windowText);
    if (windowMs === null) throw new CliError(`--window: "${windowText}" is not a duration (e.g. 90s, 15m, 24h, 7d)`);
    const topText = typeof values['top'] === 'string' ? values['top'] : '10';
    const top = Number(topText);
    if (!Number.isInteger(top) || top < 1 || top > 1000) {
      throw new CliError(`--top: "${topText}" must be a whole number from 1 to 1000`);
    }
    return withSource(ctx, values, async (source) => {
      const analytics = await computeAnalytics(source, windowMs, top);
      if (values['json'] === true) printJson(ctx, analytics);
      else ctx.stdout.write(`${analyticsText(analytics, ctx.stdout.isTTY)}\n`);
      return 0;
    });
  },
};
