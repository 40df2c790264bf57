// The timeline: one self-contained HTML page (inline CSS, SVG and a few lines of script; no
// network) showing a device's target versions, reports, sync and drift, enabled/disabled and
// connectivity, and any other event family, over a window. Hover shows details.
import type { DeviceState } from '../../domain/device/state.ts';
import {
  compact,
  describeDrift,
  describeFields,
  describeReportedApps,
  describeTargetApps,
  shortTime,
} from '../../domain/replay/describe.ts';
import { driftDetail, type DriftReport, type Reconciliation } from '../../domain/replay/drift.ts';
import { eventRef, type History, instantMs, type Step } from '../../domain/replay/history.ts';
import type { DeviceSummary } from '../../domain/replay/source.ts';
import { formatDuration, percentile } from '../../domain/replay/time.ts';
import type { LogLine } from '../../infra/telemetry/device-logs.ts';

/** The lines a device logged around one instant of the page (issue #15). */
export type LogsNear = { label: string; at: string; lines: readonly LogLine[]; omitted: number };

/** What the page is drawn from; `logs`, when asked for, holds the lines around each drift start. */
export type TimelineInput = {
  device: DeviceSummary;
  history: History;
  drift: DriftReport;
  generatedAt: string;
  sourceDescription: string;
  logs?: { windowMs: number; around: readonly LogsNear[] } | undefined;
};

/** Drift starts the page shows logs around: the latest this many. */
export const LOG_INSTANTS = 10;
/** Lines shown around each (the nearest). */
export const LOG_LINES_NEAR = 50;

/** The instants whose logs the page shows: the start of each of the latest drift intervals, newest first. */
export function logInstants(drift: DriftReport): { label: string; at: string }[] {
  return drift.intervals.map((interval, n) => ({ label: `drift interval ${n + 1}`, at: interval.start }))
    .slice(-LOG_INSTANTS).reverse();
}

/** The logs section: per instant, its lines with their offset from it. */
function logsSection(logs: NonNullable<TimelineInput['logs']>): string {
  const window = esc(formatDuration(logs.windowMs));
  const blocks = logs.around.map((near, i) => {
    const at = instantMs(near.at);
    const rows = near.lines.map((line) =>
      `<tr class="log ${esc(line.level)}"><td>${esc(shortTime(line.timestamp))}</td><td>${
        esc((instantMs(line.timestamp) >= at ? '+' : '') + formatDuration(instantMs(line.timestamp) - at))
      }</td><td><span class="pill ${line.level === 'error' ? 'pending' : ''}">${esc(line.level)}</span></td><td>${
        esc(line.service_name ?? line.source.name ?? '—')
      }</td><td class="wrap">${esc(line.message)}</td></tr>`
    ).join('');
    return `<details${i === 0 ? ' open' : ''}><summary>${esc(near.label)}, starting ${
      esc(shortTime(near.at))
    }: ${near.lines.length} line(s)${near.omitted > 0 ? `, the nearest shown (${near.omitted} more)` : ''}</summary>${
      near.lines.length === 0
        ? '<div class="empty">Nothing logged then.</div>'
        : `<table><thead><tr><th>Time</th><th>From the start</th><th>Level</th><th>Service</th><th>Message</th></tr></thead><tbody>${rows}</tbody></table>`
    }</details>`;
  }).join('\n');
  return `<h2>What the device logged when it started to drift <small>(within ${window} of each start, from device_logs)</small></h2>
${logs.around.length === 0 ? '<div class="empty">No drift interval in this window.</div>' : blocks}`;
}

const W = 1200;
const LABEL_W = 150;
const RIGHT = 24;
const PLOT_W = W - LABEL_W - RIGHT;
const LANE_H = 26;
const LANE_GAP = 16;
const TOP = 14;
const MAX_MARKERS = 1_200;
const BINS = 240;
const EVENT_ROWS = 400;
const MAX_SEGMENTS = 1_500;
const INTERVAL_ROWS = 500;

const KNOWN = new Set([
  'device.provisioned',
  'target_state.updated',
  'current_state.updated',
  'device.online',
  'device.offline',
  'device.connection_lost',
  'device.connection_restored',
]);

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(
    /'/g,
    '&#39;',
  );
}

const esc = escapeHtml;
const px = (n: number) => n.toFixed(1);

type Point = { t: number; state: DeviceState; step: Step | null };
type Segment<K> = { from: number; to: number; key: K; first: Point };

function segments<K>(points: readonly Point[], end: number, keyOf: (s: DeviceState) => K): Segment<K>[] {
  const out: Segment<K>[] = [];
  for (const point of points) {
    const key = keyOf(point.state);
    const last = out[out.length - 1];
    if (last !== undefined && last.key === key) continue;
    if (last !== undefined) last.to = point.t;
    out.push({ from: point.t, to: end, key, first: point });
  }
  return out.filter((s) => s.to > s.from || out.length === 1);
}

/** Per column of the plot: the share of its time in sync and out of sync, and how many stretches began in it. */
function binShares(
  list: readonly Segment<string>[],
  t0: number,
  t1: number,
): { from: number; to: number; sync: number; drift: number; changes: number }[] {
  const width = (t1 - t0) / BINS;
  const bins = Array.from(
    { length: BINS },
    (_, i) => ({ from: t0 + i * width, to: t0 + (i + 1) * width, sync: 0, drift: 0, changes: 0 }),
  );
  for (const segment of list) {
    const first = Math.max(0, Math.floor((segment.from - t0) / width));
    const last = Math.min(BINS - 1, Math.floor((segment.to - t0) / width));
    if (first < BINS) bins[first]!.changes += 1;
    for (let b = first; b <= last; b += 1) {
      const bin = bins[b]!;
      const overlap = Math.max(0, Math.min(segment.to, bin.to) - Math.max(segment.from, bin.from)) / width;
      if (segment.key === 'drift') bin.drift += overlap;
      else if (segment.key === 'sync') bin.sync += overlap;
    }
  }
  return bins;
}

const TICK_STEPS = [1, 2, 5, 10, 15, 30].map((s) => s * 1_000)
  .concat([1, 2, 5, 10, 15, 30].map((m) => m * 60_000))
  .concat([1, 2, 3, 6, 12].map((h) => h * 3_600_000))
  .concat([1, 2, 7, 14, 30].map((d) => d * 86_400_000));

function ticks(t0: number, t1: number): { t: number; label: string }[] {
  const span = t1 - t0;
  const step = TICK_STEPS.find((s) => span / s <= 10) ?? TICK_STEPS[TICK_STEPS.length - 1]!;
  const out: { t: number; label: string }[] = [];
  let previousDay = '';
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    const iso = new Date(t).toISOString();
    const day = iso.slice(5, 10);
    const clock = step < 60_000 ? iso.slice(11, 19) : iso.slice(11, 16);
    let label = step >= 86_400_000 ? day : clock;
    if (step < 86_400_000 && day !== previousDay) label = `${day} ${clock}`;
    previousDay = day;
    out.push({ t, label });
  }
  return out;
}

function syncKey(s: DeviceState): 'none' | 'notarget' | 'sync' | 'drift' {
  if (s.status !== 'registered') return 'none';
  if (s.target === null) return 'notarget';
  return s.drift.in_sync ? 'sync' : 'drift';
}

function family(type: string): string {
  return type.split('.')[0] ?? type;
}

function tone(type: string): 'bad' | 'good' | 'neutral' {
  if (/crash|fail|lost|error|removed|stopped|offline|rejected|aborted/.test(type)) return 'bad';
  if (/start|complete|pulled|created|restored|online|provisioned/.test(type)) return 'good';
  return 'neutral';
}

function eventSummary(step: Step): string {
  const data = step.event.data;
  switch (step.event.event_type) {
    case 'target_state.updated':
      return `target v${String(data['version'])}: ${
        describeTargetApps((data['new_state'] as { apps?: Record<string, unknown> } | undefined)?.apps ?? {}).join(
          '; ',
        ) || 'no apps'
      }`;
    case 'current_state.updated': {
      const apps = data['apps'] as Record<string, unknown> | undefined;
      const parts = [apps === undefined ? 'apps unchanged' : describeReportedApps(apps).join('; ') || 'no apps'];
      const fields = describeFields({
        ...(data['system'] as object | undefined),
        ...(data['resources'] as object | undefined),
      });
      if (fields !== '') parts.push(fields);
      return parts.join(' · ');
    }
    case 'device.online':
    case 'device.offline':
      return `${String(data['previous_state'])} → ${String(data['new_state'])}${
        data['reason'] ? ` (${String(data['reason'])})` : ''
      }`;
    default:
      return describeFields(data) || compact(data, 160);
  }
}

/** Renders the timeline page. */
export function renderTimeline(input: TimelineInput): string {
  const { device, history, drift } = input;
  const firstAt = history.steps[0]?.at;
  let t0 = instantMs(
    history.since ??
      (firstAt !== undefined && instantMs(firstAt) < instantMs(device.registered_at) ? firstAt : device.registered_at),
  );
  let t1 = instantMs(history.until);
  if (t1 <= t0) {
    t0 -= 30_000;
    t1 += 30_000;
  }
  const x = (t: number) => LABEL_W + ((Math.min(Math.max(t, t0), t1) - t0) / (t1 - t0)) * PLOT_W;
  const points: Point[] = [
    { t: t0, state: history.start, step: null },
    ...history.steps.map((s) => ({ t: instantMs(s.at), state: s.after, step: s })),
  ];
  const byVersion = new Map<number, Reconciliation>(drift.reconciliations.map((r) => [r.target_version, r]));

  const lanes: { label: string; hint: string; body: string }[] = [];
  const laneY = (i: number) => TOP + i * (LANE_H + LANE_GAP);
  const rect = (from: number, to: number, y: number, cls: string, tip: string, extra = '') =>
    `<rect class="${cls}" x="${px(x(from))}" y="${px(y)}" width="${
      px(Math.max(2, x(to) - x(from)))
    }" height="${LANE_H}" rx="3"${extra}><title>${esc(tip)}</title></rect>`;
  const span = (from: number, to: number) =>
    `${shortTime(new Date(from).toISOString())} → ${
      to >= t1 && to === t1
        ? `${shortTime(new Date(to).toISOString())} (end of window)`
        : shortTime(new Date(to).toISOString())
    } · ${formatDuration(to - from)}`;

  /** Too many events to draw one by one: a bar per column, as tall as its count, red when any is `bad`. */
  const density = (steps: readonly Step[], bad: (s: Step) => boolean, noun: string, badNoun: string): string => {
    const bins = new Map<number, { n: number; bad: number }>();
    for (const s of steps) {
      const b = Math.min(BINS - 1, Math.max(0, Math.floor(((instantMs(s.at) - t0) / (t1 - t0)) * BINS)));
      const bin = bins.get(b) ?? { n: 0, bad: 0 };
      bin.n += 1;
      if (bad(s)) bin.bad += 1;
      bins.set(b, bin);
    }
    const most = [...bins.values()].reduce((m, b) => Math.max(m, b.n), 1);
    return [...bins.entries()].map(([b, bin]) => {
      const from = t0 + (b / BINS) * (t1 - t0);
      const to = t0 + ((b + 1) / BINS) * (t1 - t0);
      const h = Math.max(3, (bin.n / most) * LANE_H);
      return `<rect class="bar ${bin.bad > 0 ? 'bad' : 'ok'}" x="${px(x(from))}" y="${px(LANE_H - h)}" width="${
        px(Math.max(1, x(to) - x(from) - 0.5))
      }" height="${px(h)}"><title>${esc(`${bin.n} ${noun}, ${bin.bad} ${badNoun}\n${span(from, to)}`)}</title></rect>`;
    }).join('');
  };

  // sync lane: one segment per stretch, or per-column shares when stretches are too many to see
  const syncSegments = segments(points, t1, syncKey).filter((s) => s.key !== 'none');
  let syncBody: string;
  if (syncSegments.length <= MAX_SEGMENTS) {
    let next = 0; // intervals and segments are both in time order
    syncBody = syncSegments.map((s) => {
      const state = s.first.state;
      if (s.key === 'notarget') return rect(s.from, s.to, 0, 'seg notarget', `No target yet\n${span(s.from, s.to)}`);
      if (s.key === 'sync') {
        return rect(
          s.from,
          s.to,
          0,
          'seg sync',
          `In sync with target v${state.status === 'registered' ? String(state.target?.version) : '?'}\n${
            span(s.from, s.to)
          }`,
        );
      }
      while (
        next < drift.intervals.length && drift.intervals[next]!.end !== null &&
        instantMs(drift.intervals[next]!.end!) < s.to - 1
      ) next += 1;
      const interval = drift.intervals[next];
      const lines = [`Out of sync`, span(s.from, s.to), ...describeDrift(interval?.differed ?? driftDetail(state))];
      if (interval?.ended_by) lines.push(`ended by ${interval.ended_by.event_type} v${interval.ended_by.version}`);
      return rect(s.from, s.to, 0, 'seg drift', lines.join('\n'));
    }).join('');
  } else {
    const shares = binShares(syncSegments, t0, t1);
    syncBody = shares.map((bin) => {
      const h = LANE_H * bin.drift;
      const tip = `${(bin.drift * 100).toFixed(0)}% out of sync, ${(bin.sync * 100).toFixed(0)}% in sync\n${
        span(bin.from, bin.to)
      }\n${bin.changes} change(s)`;
      return `<g><rect class="seg dense sync" x="${px(x(bin.from))}" y="0" width="${
        px(Math.max(1, x(bin.to) - x(bin.from)))
      }" height="${LANE_H}"><title>${esc(tip)}</title></rect>` +
        (h > 0
          ? `<rect class="seg dense drift" x="${px(x(bin.from))}" y="${px(LANE_H - h)}" width="${
            px(Math.max(1, x(bin.to) - x(bin.from)))
          }" height="${px(h)}"><title>${esc(tip)}</title></rect>`
          : '') +
        '</g>';
    }).join('');
  }
  lanes.push({
    label: 'Sync',
    hint: syncSegments.length <= MAX_SEGMENTS ? 'with the target' : 'share per column',
    body: syncBody,
  });

  // target lane
  lanes.push({
    label: 'Target',
    hint: 'version in force',
    body: segments(points, t1, (s) => (s.status === 'registered' ? s.target?.version ?? null : null)).filter((s) =>
      s.key !== null
    ).map((s) => {
      const state = s.first.state;
      const target = state.status === 'registered' ? state.target : null;
      const version = s.key as number;
      const r = byVersion.get(version);
      const lines = [
        `Target v${version}`,
        `set ${shortTime(target?.updated_at ?? new Date(s.from).toISOString())}${
          s.first.step ? ` by ${eventRef(s.first.step.event).actor ?? 'unknown'}` : ''
        }`,
        ...describeTargetApps(target?.apps ?? {}).map((a) => `app ${a}`),
      ];
      if (target !== null && Object.keys(target.config).length > 0) {
        lines.push(`config: ${describeFields(target.config)}`);
      }
      if (r?.status === 'converged') lines.push(`reached after ${formatDuration(r.delay_ms ?? 0)}`);
      else if (r?.status === 'superseded') lines.push('superseded before the device reached it');
      else if (r?.status === 'pending') lines.push(`not reached yet (${formatDuration(r.waiting_ms ?? 0)} so far)`);
      const w = x(s.to) - x(s.from);
      const label = w > 28
        ? `<text class="seg-label" x="${px(x(s.from) + 6)}" y="${px(LANE_H / 2 + 4)}">v${version}</text>`
        : '';
      return `<g>${rect(s.from, s.to, 0, `seg target t${version % 6}`, lines.join('\n'))}${label}</g>`;
    }).join(''),
  });

  // reports lane: one marker per report, or density bars when there are too many to see
  const reports = history.steps.filter((s) => s.event.event_type === 'current_state.updated');
  let reportsBody = '';
  if (reports.length <= MAX_MARKERS) {
    reportsBody = reports.map((s) => {
      const t = instantMs(s.at);
      const ok = syncKey(s.after) !== 'drift';
      const lines = [
        `Report v${s.event.aggregate_version} · ${shortTime(s.at)}`,
        eventSummary(s),
        ok ? '→ in sync' : `→ out of sync: ${describeDrift(driftDetail(s.after)).join('; ')}`,
      ];
      return `<circle class="mark ${ok ? 'ok' : 'bad'}" cx="${px(x(t))}" cy="${px(LANE_H / 2)}" r="5"><title>${
        esc(lines.join('\n'))
      }</title></circle>`;
    }).join('');
  } else {
    reportsBody = density(reports, (s) => syncKey(s.after) === 'drift', 'reports', 'leaving the device out of sync');
  }
  lanes.push({ label: 'Reports', hint: `${reports.length} state report(s)`, body: reportsBody });

  // enabled lane
  lanes.push({
    label: 'Enabled',
    hint: 'by an admin',
    body: segments(points, t1, (s) => (s.status === 'registered' ? s.is_active : null)).filter((s) => s.key !== null)
      .map((s) => {
        const data = s.first.step?.event.data;
        const reason = data !== undefined && typeof data['reason'] === 'string' ? `reason: ${data['reason']}` : null;
        const by = s.first.step === null ? null : `by ${eventRef(s.first.step.event).actor ?? 'unknown'}`;
        const lines = [
          s.key ? 'Enabled' : 'Disabled',
          span(s.from, s.to),
          ...(by && s.first.step?.event.event_type.startsWith('device.o') ? [by] : []),
          ...(reason ? [reason] : []),
        ];
        return rect(s.from, s.to, 0, `seg ${s.key ? 'on' : 'off'}`, lines.join('\n'));
      }).join(''),
  });

  // connectivity lane, when the log has connectivity events
  const connectivity = history.steps.filter((s) =>
    s.event.event_type === 'device.connection_lost' || s.event.event_type === 'device.connection_restored'
  );
  if (connectivity.length > 0) {
    const parts: string[] = [];
    let from = t0;
    let online = connectivity[0]!.event.event_type === 'device.connection_lost';
    for (const s of connectivity) {
      const t = instantMs(s.at);
      parts.push(
        rect(
          from,
          t,
          0,
          `seg ${online ? 'online' : 'offline'}`,
          `${online ? 'Connected' : 'Connection lost'}\n${span(from, t)}`,
        ),
      );
      from = t;
      online = s.event.event_type === 'device.connection_restored';
    }
    parts.push(
      rect(
        from,
        t1,
        0,
        `seg ${online ? 'online' : 'offline'}`,
        `${online ? 'Connected' : 'Connection lost'}\n${span(from, t1)}`,
      ),
    );
    lanes.push({ label: 'Connectivity', hint: 'lost / restored', body: parts.join('') });
  }

  // one lane per other event family (container, reconciliation, image, …)
  const families = new Map<string, Step[]>();
  for (const s of history.steps) {
    if (KNOWN.has(s.event.event_type)) continue;
    const f = family(s.event.event_type);
    const list = families.get(f);
    if (list === undefined) families.set(f, [s]);
    else list.push(s);
  }
  for (const [name, steps] of families) {
    lanes.push({
      label: name.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase()),
      hint: `${steps.length} event(s)`,
      body: steps.length > MAX_MARKERS
        ? density(steps, (s) => tone(s.event.event_type) === 'bad', `${name}.* events`, 'failures or crashes')
        : steps.map((s) => {
          const t = instantMs(s.at);
          return `<rect class="mark ${tone(s.event.event_type)}" x="${px(x(t) - 4)}" y="${
            px(LANE_H / 2 - 4)
          }" width="8" height="8" transform="rotate(45 ${px(x(t))} ${px(LANE_H / 2)})"><title>${
            esc(`${s.event.event_type} v${s.event.aggregate_version} · ${shortTime(s.at)}\n${eventSummary(s)}`)
          }</title></rect>`;
        }).join(''),
    });
  }

  const lanesBottom = laneY(lanes.length) - LANE_GAP + 6;
  const axisY = lanesBottom + 4;
  const height = axisY + 30;
  const bandHeight = px(lanesBottom - TOP + 6);
  const bands = drift.intervals.length <= MAX_SEGMENTS
    ? drift.intervals.map((interval, i) => {
      const from = Math.max(instantMs(interval.start), t0);
      const to = interval.end === null ? t1 : Math.min(instantMs(interval.end), t1);
      const tip = [
        `Drift interval ${i + 1}`,
        `${shortTime(interval.start)} → ${interval.end === null ? 'ongoing' : shortTime(interval.end)} · ${
          formatDuration(interval.duration_ms)
        }`,
        ...describeDrift(interval.differed),
      ];
      return `<rect class="drift-band" data-index="${i}" data-start="${esc(interval.start)}" data-end="${
        esc(interval.end ?? '')
      }" x="${px(x(from))}" y="${TOP - 6}" width="${px(Math.max(2, x(to) - x(from)))}" height="${bandHeight}"><title>${
        esc(tip.join('\n'))
      }</title></rect>`;
    }).join('')
    // thousands of intervals: shade each column by the share of its time spent out of sync
    : binShares(syncSegments, t0, t1).filter((bin) => bin.drift > 0).map((bin) =>
      `<rect class="drift-band dense" x="${px(x(bin.from))}" y="${TOP - 6}" width="${
        px(Math.max(1, x(bin.to) - x(bin.from)))
      }" height="${bandHeight}" fill-opacity="${(0.25 + 0.75 * bin.drift).toFixed(2)}"><title>${
        esc(`${(bin.drift * 100).toFixed(0)}% of this stretch out of sync\n${span(bin.from, bin.to)}`)
      }</title></rect>`
    ).join('');
  const axis = ticks(t0, t1).map((tick) =>
    `<g class="tick"><line x1="${px(x(tick.t))}" x2="${px(x(tick.t))}" y1="${TOP - 6}" y2="${axisY}"/><text x="${
      px(x(tick.t))
    }" y="${axisY + 16}">${esc(tick.label)}</text></g>`
  ).join('');
  const laneSvg = lanes.map((lane, i) =>
    `<g class="lane" transform="translate(0 ${laneY(i)})">
    <text class="lane-label" x="12" y="${LANE_H / 2 - 1}">${esc(lane.label)}</text><text class="lane-hint" x="12" y="${
      LANE_H / 2 + 11
    }">${esc(lane.hint)}</text>
    <rect class="lane-bg" x="${LABEL_W}" y="0" width="${PLOT_W}" height="${LANE_H}" rx="3"/>${lane.body}</g>`
  ).join('\n');

  const svg = `<svg id="timeline" viewBox="0 0 ${W} ${height}" role="img" aria-label="timeline of ${
    esc(device.device_name)
  }" data-t0="${t0}" data-t1="${t1}" data-x0="${LABEL_W}" data-x1="${LABEL_W + PLOT_W}">
  <defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/><line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/></pattern></defs>
  <g class="axis">${axis}</g>
  <g class="bands">${bands}</g>
  ${laneSvg}
  <line id="cursor" x1="0" x2="0" y1="${TOP - 6}" y2="${axisY}" visibility="hidden"/>
</svg>`;

  return page(input, svg, t0, t1);
}

/** "admin:4c634d9a…" from "admin:4c634d9a-44a6-…": enough to tell actors apart in a table. */
function shortActor(actor: string | null): string {
  if (actor === null) return '—';
  const [type, id] = actor.split(':');
  return id === undefined ? actor : `${type}:${id.slice(0, 8)}${id.length > 8 ? '…' : ''}`;
}

function card(label: string, value: string, note: string, cls = ''): string {
  return `<div class="card ${cls}"><div class="card-label">${esc(label)}</div><div class="card-value">${
    esc(value)
  }</div><div class="card-note">${esc(note)}</div></div>`;
}

function page(input: TimelineInput, svg: string, t0: number, t1: number): string {
  const { device, history, drift } = input;
  const end = history.steps.length === 0 ? history.start : history.steps[history.steps.length - 1]!.after;
  const windowMs = t1 - t0;
  const out = drift.totals.out_of_sync_ms;
  const ongoing = drift.intervals.find((i) => i.ongoing);
  const delays = drift.reconciliations.filter((r) => r.delay_ms !== null).map((r) => r.delay_ms!);
  const median = percentile(delays, 50);
  const reports = history.steps.filter((s) => s.event.event_type === 'current_state.updated').length;
  const targetNow = end.status === 'registered' ? end.target?.version ?? null : null;
  const cards = [
    end.status !== 'registered' ? card('At end of window', 'Not registered', '') : !end.drift.in_sync
      ? card(
        'At end of window',
        'Out of sync',
        ongoing ? `since ${shortTime(ongoing.start)} (${formatDuration(ongoing.duration_ms)})` : '',
        'bad',
      )
      : card('At end of window', 'In sync', targetNow === null ? 'no target set' : `with target v${targetNow}`, 'good'),
    card(
      'Time out of sync',
      formatDuration(out),
      `${windowMs > 0 ? ((out / windowMs) * 100).toFixed(1) : '0'}% of the window`,
      out > 0 ? 'bad' : '',
    ),
    card(
      'Drift intervals',
      String(drift.intervals.length),
      drift.intervals.length === 0 ? 'none' : `longest ${formatDuration(drift.totals.longest_ms)}`,
    ),
    card(
      'Target changes',
      String(drift.reconciliations.length),
      targetNow === null ? 'no target' : `now v${targetNow}`,
    ),
    card(
      'Time to converge',
      median === null ? '—' : formatDuration(median),
      `median of ${delays.length}; ${drift.reconciliations.filter((r) => r.status === 'pending').length} pending, ${
        drift.reconciliations.filter((r) => r.status === 'superseded').length
      } superseded`,
    ),
    card('Reports', String(reports), `${history.steps.length} events in the window`),
  ].join('');

  const intervalRows = drift.intervals.map((i, n) => [i, n] as const).slice(-INTERVAL_ROWS).reverse().map(([i, n]) =>
    `<tr class="${i.ongoing ? 'ongoing' : ''}"><td>${n + 1}</td><td>${esc(shortTime(i.start))}</td><td>${
      i.end === null ? '<b>ongoing</b>' : esc(shortTime(i.end))
    }</td><td>${esc(formatDuration(i.duration_ms))}</td><td class="wrap">${
      esc(describeDrift(i.differed).join('; ') || '—')
    }</td><td>${i.ended_by === null ? '—' : esc(`${i.ended_by.event_type} v${i.ended_by.version}`)}</td></tr>`
  ).join('');
  const targetRows = drift.reconciliations.slice(-INTERVAL_ROWS).reverse().map((r) =>
    `<tr><td>v${r.target_version}</td><td>${esc(shortTime(r.set_at))}</td><td title="${esc(r.set_by.actor ?? '')}">${
      esc(shortActor(r.set_by.actor))
    }</td><td><span class="pill ${r.status}">${r.status}</span></td><td>${
      r.delay_ms === null
        ? (r.waiting_ms === null ? '—' : `${esc(formatDuration(r.waiting_ms))} so far`)
        : esc(formatDuration(r.delay_ms))
    }</td></tr>`
  ).join('');
  const shownSteps = history.steps.slice(-EVENT_ROWS).reverse();
  const eventRows = shownSteps.map((s) =>
    `<tr><td>${esc(shortTime(s.at))}</td><td>${s.event.aggregate_version}</td><td><span class="type ${
      tone(s.event.event_type)
    }">${esc(s.event.event_type)}</span></td><td title="${esc(eventRef(s.event).actor ?? '')}">${
      esc(shortActor(eventRef(s.event).actor))
    }</td><td class="summary">${esc(eventSummary(s))}</td></tr>`
  ).join('');

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${esc(device.device_name)} · timeline · devicetrail</title>
<style>
:root{--bg:#f6f7f9;--card:#fff;--text:#1d2430;--muted:#6b7685;--line:#e3e7ed;--sync:#37b24d;--sync-bg:#d3f9d8;--drift:#e03131;--drift-band:rgba(224,49,49,.10);--none:#ced4da;--off:#868e96;--online:#1c7ed6;--t0:#4c6ef5;--t1:#7048e8;--t2:#1098ad;--t3:#f08c00;--t4:#ae3ec9;--t5:#0ca678}
@media (prefers-color-scheme:dark){:root{--bg:#14171c;--card:#1c2128;--text:#e6e9ee;--muted:#98a2b3;--line:#2b323c;--sync-bg:#1e3a26;--drift-band:rgba(255,92,92,.16);--none:#3a414b;--off:#5c6570}}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--text);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1260px;margin:0 auto;padding:24px}
header h1{margin:0;font-size:24px;letter-spacing:-.01em}header .meta{color:var(--muted);margin-top:4px}header code{font-size:12.5px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:20px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px;border-top:3px solid var(--line)}
.card.good{border-top-color:var(--sync)}.card.bad{border-top-color:var(--drift)}
.card-label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.05em}.card-value{font-size:22px;font-weight:650;margin:2px 0}.card-note{color:var(--muted);font-size:12.5px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 10px 6px;margin-bottom:18px;position:relative}
.legend{display:flex;flex-wrap:wrap;gap:16px;color:var(--muted);font-size:12.5px;padding:0 6px 10px}.legend i{display:inline-block;width:14px;height:10px;border-radius:2px;margin-right:6px;vertical-align:-1px}
svg{width:100%;height:auto;display:block}
.lane-bg{fill:var(--bg);fill-opacity:.6;pointer-events:none}.lane-label{font-weight:600;font-size:13px;fill:var(--text)}.lane-hint{font-size:10.5px;fill:var(--muted)}
.seg{stroke:var(--card);stroke-width:1}.seg:hover,.mark:hover,.bar:hover{filter:brightness(.85)}
.seg.sync{fill:var(--sync)}.seg.drift{fill:var(--drift)}.seg.notarget{fill:var(--none)}
.seg.on{fill:var(--sync);opacity:.75}.seg.off{fill:url(#hatch)}.hatch-bg{fill:var(--none)}.hatch-line{stroke:var(--off);stroke-width:3}
.seg.online{fill:var(--online);opacity:.75}.seg.offline{fill:url(#hatch)}
.seg.target.t0{fill:var(--t0)}.seg.target.t1{fill:var(--t1)}.seg.target.t2{fill:var(--t2)}.seg.target.t3{fill:var(--t3)}.seg.target.t4{fill:var(--t4)}.seg.target.t5{fill:var(--t5)}
.seg-label{fill:#fff;font-size:11.5px;font-weight:650;pointer-events:none}
.mark{stroke:var(--card);stroke-width:1.5}.mark.ok,.mark.good{fill:var(--sync)}.mark.bad{fill:var(--drift)}.mark.neutral{fill:var(--t0)}
.bar.ok{fill:var(--sync)}.bar.bad{fill:var(--drift)}
.drift-band{fill:var(--drift-band);stroke:var(--drift);stroke-opacity:.35;stroke-dasharray:3 3}.drift-band.dense{stroke:none}.seg.dense{stroke:none}
.tick line{stroke:var(--line)}.tick text{fill:var(--muted);font-size:11px;text-anchor:middle}
#cursor{stroke:var(--text);stroke-opacity:.35;stroke-width:1;pointer-events:none}
#tip{position:fixed;z-index:10;pointer-events:none;max-width:460px;background:#111827;color:#f3f4f6;border-radius:8px;padding:8px 10px;font-size:12.5px;line-height:1.4;box-shadow:0 6px 24px rgba(0,0,0,.25);white-space:pre-wrap;display:none}
#tip b{display:block;margin-bottom:2px}#tip .time{color:#9ca3af;font-size:11.5px}
h2{font-size:16px;margin:26px 0 8px}h2 small{color:var(--muted);font-weight:400;font-size:12.5px}
table{width:100%;border-collapse:collapse;background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;font-size:13px}
th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}td.summary,td.wrap{white-space:normal;overflow-wrap:anywhere;width:100%}th{color:var(--muted);font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
tr.ongoing td{background:var(--drift-band)}
.pill,.type{display:inline-block;border-radius:99px;padding:1px 8px;font-size:12px;background:var(--bg);border:1px solid var(--line)}
.pill.converged,.type.good{color:var(--sync);border-color:var(--sync)}.pill.pending,.type.bad{color:var(--drift);border-color:var(--drift)}.pill.superseded{color:var(--muted)}
details summary{cursor:pointer;color:var(--muted);margin:8px 0}.empty{color:var(--muted);padding:8px 0}
footer{color:var(--muted);font-size:12px;margin-top:24px}
</style>
</head>
<body>
<main>
<header>
  <h1>${esc(device.device_name)}</h1>
  <div class="meta"><code>${esc(device.uuid)}</code> · ${esc(device.device_type)} · fleet <b>${
    esc(device.fleet_id)
  }</b> · registered ${esc(shortTime(device.registered_at))}</div>
  <div class="meta">Window ${esc(shortTime(new Date(t0).toISOString()))} → ${
    esc(shortTime(new Date(t1).toISOString()))
  } (${esc(formatDuration(t1 - t0))}), times in UTC</div>
</header>
<section class="cards">${cards}</section>
<section class="panel">
  <div class="legend"><span><i style="background:var(--sync)"></i>in sync</span><span><i style="background:var(--drift)"></i>out of sync</span><span><i style="background:var(--drift-band);border:1px dashed var(--drift)"></i>drift interval</span><span><i style="background:var(--none)"></i>no target</span><span><i style="background:var(--t0)"></i>target version</span><span><i style="background:var(--off)"></i>disabled / offline</span><span>● report (green: in sync after it)</span><span>◆ other event</span></div>
  ${svg}
</section>
<h2>Drift intervals${
    drift.intervals.length > INTERVAL_ROWS
      ? ` <small>(the latest ${INTERVAL_ROWS} of ${drift.intervals.length}, newest first)</small>`
      : drift.intervals.length > 1
      ? ' <small>(newest first)</small>'
      : ''
  }</h2>
${
    drift.intervals.length === 0
      ? '<div class="empty">The device was never out of sync in this window.</div>'
      : `<table id="drift-table"><thead><tr><th>#</th><th>Start</th><th>End</th><th>Duration</th><th>What differed when it started</th><th>Ended by</th></tr></thead><tbody>${intervalRows}</tbody></table>`
  }
${input.logs === undefined ? '' : logsSection(input.logs)}
<h2>Target versions${
    drift.reconciliations.length > INTERVAL_ROWS
      ? ` <small>(the latest ${INTERVAL_ROWS} of ${drift.reconciliations.length}, newest first)</small>`
      : drift.reconciliations.length > 1
      ? ' <small>(newest first)</small>'
      : ''
  }</h2>
${
    drift.reconciliations.length === 0
      ? '<div class="empty">No target change in this window.</div>'
      : `<table><thead><tr><th>Version</th><th>Set at</th><th>By</th><th>Outcome</th><th>Time to reach</th></tr></thead><tbody>${targetRows}</tbody></table>`
  }
<h2>Events</h2>
<details${history.steps.length <= 60 ? ' open' : ''}><summary>${history.steps.length} event(s) in the window${
    history.steps.length > EVENT_ROWS ? `, the latest ${EVENT_ROWS} listed` : ''
  }, newest first</summary>
${
    history.steps.length === 0
      ? '<div class="empty">No events in this window.</div>'
      : `<table><thead><tr><th>Time</th><th>Version</th><th>Type</th><th>Actor</th><th>Summary</th></tr></thead><tbody>${eventRows}</tbody></table>`
  }
</details>
<footer>Generated by devicetrail replay at ${esc(shortTime(input.generatedAt))} from ${
    esc(input.sourceDescription)
  }. Every state shown is the domain fold of the events up to that instant.</footer>
</main>
<div id="tip"></div>
<script>
(function () {
  var svg = document.getElementById('timeline'), tip = document.getElementById('tip'), cursor = document.getElementById('cursor');
  var t0 = +svg.dataset.t0, t1 = +svg.dataset.t1, x0 = +svg.dataset.x0, x1 = +svg.dataset.x1;
  svg.querySelectorAll('title').forEach(function (t) { t.parentNode.setAttribute('data-tip', t.textContent); t.remove(); });
  function show(e, text) {
    var lines = text.split('\\n');
    tip.textContent = '';
    var head = document.createElement('b'); head.textContent = lines.shift(); tip.appendChild(head);
    tip.appendChild(document.createTextNode(lines.join('\\n')));
    tip.style.display = 'block';
    var r = tip.getBoundingClientRect();
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - r.width - 8) + 'px';
    tip.style.top = (e.clientY + 16 + r.height > window.innerHeight ? e.clientY - r.height - 12 : e.clientY + 16) + 'px';
  }
  svg.addEventListener('mousemove', function (e) {
    var p = svg.createSVGPoint(); p.x = e.clientX; p.y = e.clientY;
    var loc = p.matrixTransform(svg.getScreenCTM().inverse());
    if (loc.x >= x0 && loc.x <= x1) {
      cursor.setAttribute('x1', loc.x); cursor.setAttribute('x2', loc.x); cursor.setAttribute('visibility', 'visible');
    } else cursor.setAttribute('visibility', 'hidden');
    var target = e.target.closest ? e.target.closest('[data-tip]') : null;
    var at = new Date(t0 + (Math.min(Math.max(loc.x, x0), x1) - x0) / (x1 - x0) * (t1 - t0)).toISOString().replace('T', ' ').replace(/\\.\\d+Z$/, 'Z');
    if (target) show(e, target.getAttribute('data-tip') + '\\n— cursor at ' + at);
    else tip.style.display = 'none';
  });
  svg.addEventListener('mouseleave', function () { tip.style.display = 'none'; cursor.setAttribute('visibility', 'hidden'); });
})();
</script>
</body>
</html>
`;
}
