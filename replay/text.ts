// Text output for people: aligned tables, a device's state at an instant, colour on terminals.
import {
  compact,
  describeDrift,
  describeFields,
  describeReportedApps,
  describeTargetApps,
  shortTime,
} from '../domain/replay/describe.ts';
import { driftDetail } from '../domain/replay/drift.ts';
import type { StateView } from '../domain/replay/view.ts';
import { formatDuration } from '../domain/replay/time.ts';
import type { LogLine } from '../infra/telemetry/device-logs.ts';

/** Colour helpers that are no-ops off a terminal. */
export function palette(tty: boolean | undefined) {
  const wrap = (code: number) => (text: string) => (tty ? `\u001b[${code}m${text}\u001b[0m` : text);
  return { red: wrap(31), green: wrap(32), yellow: wrap(33), dim: wrap(2), bold: wrap(1) };
}

/** Visible width of a string (colour codes do not count). */
// deno-lint-ignore no-control-regex -- strips ANSI colour codes to measure a cell
const width = (s: string) => s.replace(/\u001b\[\d+m/g, '').length;

/** Left-aligned columns separated by two spaces. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join('  ').trimEnd();
  return [line(headers), line(widths.map((w) => '─'.repeat(w))), ...rows.map(line)].join('\n');
}

const SHOWN = new Set([
  'uuid',
  'at',
  'device_name',
  'device_type',
  'fleet_id',
  'mac_address',
  'ip_address',
  'os_version',
  'supervisor_version',
  'provisioning_key_id',
  'is_active',
  'target',
  'current',
  'drift',
  'drift_since',
  'registered_at',
  'updated_at',
  'version',
  'in_sync',
  'last_seen_at',
  'replay',
]);

/** A device's state at an instant, as text. */
export function stateText(view: StateView, tty: boolean | undefined): string {
  const c = palette(tty);
  const at = Date.parse(view.at);
  const ago = (iso: string) => formatDuration(at - Date.parse(iso));
  const pad = (label: string) => c.bold(label.padEnd(8));
  const indent = ' '.repeat(10);
  const identity = [
    view.device_type,
    `fleet ${view.fleet_id}`,
    `registered ${shortTime(view.registered_at)}`,
    ...['mac_address', 'ip_address', 'os_version', 'supervisor_version'].flatMap((k) => {
      const v = (view as Record<string, unknown>)[k];
      return v === null || v === undefined ? [] : [`${k.replace('_address', '').replace('_version', '')} ${String(v)}`];
    }),
  ];
  const lines = [
    `${pad('Device')}  ${c.bold(view.device_name)}  ${view.uuid}`,
    `${indent}${identity.join(' · ')}`,
    `${pad('At')}  ${shortTime(view.at)}  ${
      c.dim(`(${view.replay.events_folded} events folded${
        view.replay.snapshot_version === null
          ? ' from the first'
          : `, from the snapshot at version ${view.replay.snapshot_version}`
      })`)
    }`,
    `${pad('Active')}  ${view.is_active ? c.green('yes') : c.red('no (disabled)')}`,
    `${pad('Seen')}  ${
      view.last_seen_at === null
        ? 'never (no event from the device yet)'
        : `${shortTime(view.last_seen_at)} (${ago(view.last_seen_at)} before)`
    }`,
  ];
  const state = { status: 'registered' as const, ...view };
  if (view.target === null) lines.push(`${pad('Sync')}  ${c.dim('no target set')}`);
  else if (view.drift.in_sync) lines.push(`${pad('Sync')}  ${c.green('in sync')}`);
  else {
    lines.push(
      `${pad('Sync')}  ${c.red('OUT OF SYNC')}${
        view.drift_since === null ? '' : ` since ${shortTime(view.drift_since)} (${ago(view.drift_since)})`
      }`,
    );
    for (const d of describeDrift(driftDetail(state))) lines.push(`${indent}${d}`);
  }
  if (view.target === null) lines.push(`${pad('Target')}  none`);
  else {
    lines.push(`${pad('Target')}  v${view.target.version} set ${shortTime(view.target.updated_at)}`);
    const apps = describeTargetApps(view.target.apps);
    for (const a of apps) lines.push(`${indent}app ${a}`);
    if (apps.length === 0) lines.push(`${indent}no apps`);
    if (Object.keys(view.target.config).length > 0) lines.push(`${indent}config ${describeFields(view.target.config)}`);
  }
  if (view.current === null) lines.push(`${pad('Current')}  nothing reported yet`);
  else {
    const { apps, system, resources, config, reported_at, update_status, ...more } = view.current;
    lines.push(
      `${pad('Current')}  reported ${shortTime(reported_at)}${
        update_status === undefined ? '' : ` · update ${update_status}`
      }`,
    );
    const reported = describeReportedApps(apps);
    for (const a of reported) lines.push(`${indent}app ${a}`);
    if (reported.length === 0) lines.push(`${indent}no apps`);
    if (describeFields(system) !== '') lines.push(`${indent}system ${describeFields(system)}`);
    if (describeFields(resources) !== '') lines.push(`${indent}resources ${describeFields(resources)}`);
    if (config !== undefined) lines.push(`${indent}config ${describeFields(config)}`);
    for (const [k, v] of Object.entries(more)) lines.push(`${indent}${k} ${compact(v)}`);
  }
  if (view.secrets !== undefined) {
    lines.push(`${pad('Secrets')}  ${view.secrets.length} in the target (hashed; the values are never in the log)`);
    for (const secret of view.secrets) {
      const where = secret.app_id === null ? 'config' : `app ${secret.app_id} service ${secret.service_name}`;
      const verdict = secret.reported === null
        ? c.dim('not reported')
        : secret.matched
        ? c.green('reported hash matches')
        : c.red(`reported ${secret.reported}: differs`);
      lines.push(`${indent}${where} ${secret.name} ${secret.target} · ${verdict}`);
    }
  }
  const other = Object.entries(view).filter(([k]) => !SHOWN.has(k) && k !== 'secrets');
  // fields this command does not know by name (newer state) still show, as compact JSON
  other.forEach(([k, v], i) => lines.push(`${i === 0 ? pad('More') : ' '.repeat(8)}  ${k}: ${compact(v, 160)}`));
  return lines.join('\n');
}

/** Device log lines around an instant (issue #15), as returned by readLogsAround. */
export type LogsAround = { at: string; window_ms: number; lines: readonly LogLine[]; omitted: number };

/**
 * The lines a device logged around an instant, as text under the state: each with its offset
 * from the instant, its time, level and service; messages on one line, cut at 200 characters.
 */
export function logsText(logs: LogsAround, tty: boolean | undefined): string {
  const c = palette(tty);
  const at = Date.parse(logs.at);
  const indent = ' '.repeat(10);
  const head = `${c.bold('Logs'.padEnd(8))}  within ${formatDuration(logs.window_ms)} of the instant: ${
    logs.lines.length === 0 ? 'none' : `${logs.lines.length} line${logs.lines.length === 1 ? '' : 's'}`
  }${logs.omitted > 0 ? `, the nearest shown (${logs.omitted} more not shown)` : ''}`;
  const level = (
    l: string,
  ) => (l === 'error' ? c.red(l.padEnd(5)) : l === 'warn' ? c.yellow(l.padEnd(5)) : l.padEnd(5));
  const rows = logs.lines.map((line) => {
    const offset = Date.parse(line.timestamp) - at;
    const message = line.message.replace(/\r?\n/g, ' ⏎ ');
    return `${indent}${(offset >= 0 ? '+' : '') + formatDuration(offset)}  ${line.timestamp.slice(11, 23)}  ${
      level(line.level)
    }  ${line.service_name ?? line.source.name ?? '-'}  ${
      message.length > 200 ? `${message.slice(0, 199)}…` : message
    }`;
  });
  return [head, ...rows].join('\n');
}
