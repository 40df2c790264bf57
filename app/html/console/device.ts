// The device page: identity; the actions (enable/disable with a reason, the target editor);
// the time slider over the device's life with its drift intervals, and the state at the
// chosen instant (target and current side by side, differences marked); drift intervals and
// reconciliation delays; the timeline page inline; the events with type filters and paging.
import { deviceEventSchemas } from '../../../domain/device/events.ts';
import type { DriftReport } from '../../../domain/replay/drift.ts';
import { compact, describeDrift } from '../../../domain/replay/describe.ts';
import { barChart, columnChart, intervalStrip } from './charts.ts';
import { badge, count, duration, esc, markedJson, shortInstant, when } from './html.ts';

/** The parts of a device view (admin API shape, or replay's at an instant) the page shows. */
export type DeviceViewLike = {
  uuid: string;
  device_name: string;
  device_type: string;
  fleet_id: string;
  is_active: boolean;
  mac_address: string | null;
  ip_address: string | null;
  os_version: string | null;
  supervisor_version: string | null;
  provisioning_key_id: string | null;
  in_sync: boolean;
  drift_since: string | null;
  drift: {
    in_sync: boolean;
    apps_missing: string[];
    apps_extra: string[];
    services: { app_id: string; service_name: string; problem: string; expected?: string; actual?: string }[];
    config_differs: string[];
  };
  target: ({ version: number; updated_at: string; apps: Record<string, unknown> } & Record<string, unknown>) | null;
  current: ({ reported_at: string; apps: Record<string, unknown> } & Record<string, unknown>) | null;
  reconciliation: { status: string; target_version: number; started_at: string } | null;
  connectivity: { status: 'online' | 'lost'; since: string } | null;
  registered_at: string;
  last_seen_at: string | null;
  version: number;
};

/** One event row. */
export type DeviceEventRow = {
  event_id: string;
  event_type: string;
  aggregate_version: number;
  timestamp: string;
  data: unknown;
  metadata: { actor?: { type?: string; id?: string } | null } & Record<string, unknown>;
};

/** The events section's state: type filter and page (newest first, below `before`). */
export type EventsPage = {
  types: readonly string[];
  before: number | null;
  events: readonly DeviceEventRow[];
  pageSize: number;
};

/** What the page is drawn from. */
export type DeviceInput = {
  now: Date;
  device: DeviceViewLike;
  /** The state shown: now (the device itself) or replayed at an instant. */
  state: { view: DeviceViewLike; at: string | null; eventsFolded: number | null };
  drift: DriftReport | null;
  /** Instants (ms) of the device's events, for the slider's previous/next event. */
  eventInstants: readonly number[];
  events: EventsPage;
  /** The current target's secrets as markers, with whether their values are kept (README "Secrets"). */
  secrets?: readonly SecretRow[];
  /** How the device talks to devicetrail (issue #18). */
  transport: DeviceTransport;
  /** Its telemetry (issue #15): the metrics series of the last day and its newest log lines. */
  telemetry: DeviceTelemetry;
};

/** A gauge's hourly means over the last day, and the device's newest log lines. */
export type DeviceTelemetry = {
  since: string;
  series: readonly { gauge: string; points: readonly { t: string; avg: number }[] }[];
  latest: { reported_at: string; values: Record<string, number | null> } | null;
  logs: readonly {
    timestamp: string;
    level: string;
    service_name: string | null;
    message: string;
    is_stderr: boolean;
  }[];
};

/** The device's transports: its MQTT credential and connection, its last report, its target's deliveries. */
export type DeviceTransport = {
  /** The broker mode; 'off' when MQTT is off. */
  mqtt_mode: 'embedded' | 'external' | 'off';
  /** Connected now; null when the broker does not say (an external one) or MQTT is off. */
  connected: boolean | null;
  mqtt_credential_issued_at: string | null;
  last_report: { transport: 'http' | 'mqtt'; at: string } | null;
  /** First deliveries of the current target version. */
  target_deliveries: readonly { target_version: number; transport: 'http' | 'mqtt'; delivered_at: string }[];
};

/** One secret of the target: where, its marker, kept or erased, and whether the device reports it. */
export type SecretRow = {
  app_id: string | null;
  service_name: string | null;
  name: string;
  target: string;
  matched: boolean;
  reported: string | null;
  status: 'kept' | 'erased' | 'missing';
};

/** The target's secrets: markers only, never a value; erase with DELETE /api/v1/secrets/<marker>. */
function secretsSection(secrets: readonly SecretRow[] | undefined): string {
  if (secrets === undefined || secrets.length === 0) return '';
  const rows = secrets.map((s) =>
    `<tr><td>${s.app_id === null ? 'config' : esc(`${s.app_id}/${s.service_name ?? ''}`)}</td><td><code>${
      esc(s.name)
    }</code></td><td><code class="marker">${esc(s.target)}</code></td><td>${
      s.status === 'kept'
        ? badge('Kept', 'ok')
        : s.status === 'erased'
        ? badge('Erased', 'warn')
        : badge('Missing', 'off')
    }</td><td>${s.reported === null ? '—' : s.matched ? badge('Matches', 'ok') : badge('Differs', 'warn')}</td></tr>`
  ).join('');
  return `<section aria-labelledby="secrets-h">
<h2 id="secrets-h">Secrets</h2>
<p class="muted">Environment values and secret config values are kept out of the log: it holds their keyed hash.
An erased value is no longer sent to the device (<code>DELETE /api/v1/secrets/&lt;marker&gt;</code>).</p>
<table class="events"><caption>Secrets of the current target</caption><thead><tr><th scope="col">Where</th><th scope="col">Name</th><th scope="col">Marker</th><th scope="col">Value</th><th scope="col">Reported</th></tr></thead><tbody>${rows}</tbody></table>
</section>`;
}

export const EVENT_TYPES = Object.keys(deviceEventSchemas);

function connectivityBadge(c: DeviceViewLike['connectivity'], now: Date): string {
  if (c === null) return badge('Never seen', 'off');
  return c.status === 'lost'
    ? `${badge('Lost', 'warn')} since ${when(c.since, now)}`
    : `${badge('Online', 'ok')} since ${when(c.since, now)}`;
}

function syncBadge(v: DeviceViewLike, now: Date): string {
  if (v.target === null) return badge('No target', 'off');
  return v.in_sync
    ? badge('In sync', 'ok')
    : `${badge('Drifting', 'bad')} since ${when(v.drift_since, now, 'unknown')}`;
}

/** The address the device last reported (current.system.ip_address), if any. */
function reportedIp(d: DeviceViewLike): string | null {
  const system = d.current?.['system'] as Record<string, unknown> | undefined;
  const ip = system?.['ip_address'];
  return typeof ip === 'string' ? ip : null;
}

function identity(d: DeviceViewLike, now: Date): string {
  const item = (term: string, value: string) => `<div><dt>${esc(term)}</dt><dd>${value}</dd></div>`;
  const text = (v: string | null) => (v === null ? '<span class="muted">unknown</span>' : esc(v));
  return `<section id="device-identity" data-live-region aria-labelledby="identity-h">
<h2 id="identity-h">Identity</h2>
<dl class="identity">
${item('UUID', `<code>${esc(d.uuid)}</code>`)}
${item('Fleet', esc(d.fleet_id))}
${item('Type', esc(d.device_type))}
${item('Enabled', d.is_active ? badge('Enabled', 'ok') : badge('Disabled', 'off'))}
${item('Sync', syncBadge(d, now))}
${item('Connectivity', connectivityBadge(d.connectivity, now))}
${item('Last seen', when(d.last_seen_at, now))}
${item('Registered', when(d.registered_at, now))}
${item('IP address', text(reportedIp(d) ?? d.ip_address))}
${item('MAC address', text(d.mac_address))}
${item('OS', text(d.os_version))}
${item('Supervisor', text(d.supervisor_version))}
${item('Provisioning key', text(d.provisioning_key_id))}
${item('Stream version', count(d.version))}
</dl>
</section>`;
}

function differences(v: DeviceViewLike): string {
  if (v.target === null) return '<p class="muted">No target has been set for this device.</p>';
  if (v.drift.in_sync) return `<p class="ok-text">In sync: the device runs target version ${v.target.version}.</p>`;
  const items: string[] = [];
  for (const app of v.drift.apps_missing) items.push(`App <code>${esc(app)}</code> is in the target but not running`);
  for (const app of v.drift.apps_extra) items.push(`App <code>${esc(app)}</code> runs but is not in the target`);
  for (const s of v.drift.services) {
    const detail = s.expected !== undefined || s.actual !== undefined
      ? ` (target ${esc(s.expected ?? '—')}, runs ${esc(s.actual ?? '—')})`
      : '';
    items.push(
      `Service <code>${esc(`${s.app_id}/${s.service_name}`)}</code>: ${esc(s.problem.replace(/_/g, ' '))}${detail}`,
    );
  }
  for (const key of v.drift.config_differs) items.push(`Config <code>${esc(key)}</code> differs`);
  return `<ul class="differences" aria-label="Differences between target and current">${
    items.map((i) => `<li>${i}</li>`).join('')
  }</ul>`;
}

/** The state region: target and current side by side at an instant (or now), differences marked. */
export function renderDeviceState(input: DeviceInput['state'], now: Date): string {
  const v = input.view;
  const apps = (ids: readonly string[]) => ids.map((id) => ['apps', id]);
  const serviceApps = [...new Set(v.drift.services.map((s) => s.app_id))];
  const config = v.drift.config_differs.map((k) => ['config', k]);
  const targetMarks = [...apps(v.drift.apps_missing), ...apps(serviceApps), ...config];
  const currentMarks = [...apps(v.drift.apps_extra), ...apps(serviceApps), ...config];
  const heading = input.at === null ? 'State now' : `State at ${shortInstant(input.at)}`;
  const replayNote = input.at === null
    ? ''
    : `<p class="muted">Rebuilt from the log: ${
      count(input.eventsFolded ?? 0)
    } event(s) folded, as <code>GET /api/v1/devices/${esc(v.uuid)}/state?at=${esc(input.at)}</code> answers.</p>`;
  return `<section id="device-state" data-live-region data-at="${esc(input.at ?? 'now')}" aria-labelledby="state-h">
<h2 id="state-h">${esc(heading)}</h2>
${replayNote}
<p class="state-summary">${syncBadge(v, now)} · ${v.is_active ? badge('Enabled', 'ok') : badge('Disabled', 'off')} · ${
    connectivityBadge(v.connectivity, now)
  }</p>
${differences(v)}
<div class="side-by-side">
  <figure>
    <figcaption id="target-caption">Target${v.target === null ? '' : ` (version ${v.target.version})`}</figcaption>
    <pre tabindex="0" aria-labelledby="target-caption" data-json="target">${markedJson(v.target, targetMarks)}</pre>
  </figure>
  <figure>
    <figcaption id="current-caption">Current${
    v.current === null ? ' (never reported)' : ` (reported ${when(v.current.reported_at, now)})`
  }</figcaption>
    <pre tabindex="0" aria-labelledby="current-caption" data-json="current">${markedJson(v.current, currentMarks)}</pre>
  </figure>
</div>
</section>`;
}

function actions(d: DeviceViewLike): string {
  const target = d.target === null
    ? { apps: {}, config: {} }
    : { apps: d.target.apps, config: d.target['config'] ?? {} };
  return `<section aria-labelledby="actions-h" class="actions">
<h2 id="actions-h">Actions</h2>
<form id="toggle-active" class="card" data-live-region="on-demand" data-uuid="${
    esc(d.uuid)
  }" data-active="${d.is_active}">
  <h3>${d.is_active ? 'Disable this device' : 'Enable this device'}</h3>
  <p class="muted">${
    d.is_active
      ? 'A disabled device is refused on every device endpoint (403) until it is enabled again.'
      : 'The device may call in again once enabled.'
  }</p>
  <label for="active-reason">Reason</label>
  <input id="active-reason" name="reason" type="text" maxlength="500" ${
    d.is_active ? 'required' : ''
  } placeholder="e.g. maintenance window">
  <button type="submit" class="${d.is_active ? 'danger' : ''}">${
    d.is_active ? 'Disable device' : 'Enable device'
  }</button>
  <p class="error" role="alert" data-error></p>
</form>
<form id="target-editor" class="card" data-uuid="${esc(d.uuid)}" data-version="${d.target?.version ?? 0}">
  <h3>Target state</h3>
  <p class="muted">JSON <code>{"apps": {…}, "config": {…}}</code>. Saving sends <code>If-Match: "${
    d.target?.version ?? 0
  }"</code>: if someone else changed the target meanwhile, you are shown both versions instead of overwriting theirs.</p>
  <label for="target-json">Target state JSON (editing version <span data-editing-version>${
    d.target?.version ?? 0
  }</span>)</label>
  <textarea id="target-json" name="target" rows="14" spellcheck="false" aria-describedby="target-error">${
    esc(JSON.stringify(target, null, 2))
  }</textarea>
  <div class="error" id="target-error" role="alert" data-error></div>
  <button type="submit">Save target</button>
  <div id="target-conflict" class="conflict" hidden tabindex="-1" aria-labelledby="conflict-h"></div>
</form>
</section>`;
}

function timeTravel(input: DeviceInput): string {
  const from = Date.parse(input.device.registered_at);
  const to = input.now.getTime();
  const at = input.state.at === null ? to : Date.parse(input.state.at);
  const position = to > from ? Math.round(((at - from) / (to - from)) * 1000) : 1000;
  const intervals = (input.drift?.intervals ?? []).map((i) => ({
    start: Date.parse(i.start),
    end: i.end === null ? to : Date.parse(i.end),
    label: `out of sync from ${shortInstant(i.start)} ${i.end === null ? '(ongoing)' : `to ${shortInstant(i.end)}`}`,
  }));
  return `<section aria-labelledby="tt-h" class="time-travel">
<h2 id="tt-h">Time travel</h2>
<form id="time-travel" data-uuid="${esc(input.device.uuid)}" data-from="${from}" data-to="${to}">
  <div class="slider-row">
    <label for="instant-slider">Instant</label>
    <input type="range" id="instant-slider" min="0" max="1000" step="1" value="${
    Math.min(1000, Math.max(0, position))
  }" aria-describedby="instant-value">
    <output id="instant-value" for="instant-slider">${
    input.state.at === null ? 'now' : esc(shortInstant(input.state.at))
  }</output>
  </div>
  ${
    intervalStrip({
      id: 'drift-strip',
      title: 'Drift over the device’s life',
      from,
      to,
      intervals,
      marker: input.state.at === null ? null : at,
    })
  }
  <div class="strip-scale"><span>${esc(shortInstant(input.device.registered_at))}</span><span>now</span></div>
  <div class="instant-row">
    <label for="instant-text">Go to instant (ISO-8601)</label>
    <input id="instant-text" name="at" type="text" value="${
    esc(input.state.at ?? '')
  }" placeholder="2026-11-27T10:00:00Z" spellcheck="false">
    <button type="submit">Show</button>
    <button type="button" data-event-step="-1">Previous event</button>
    <button type="button" data-event-step="1">Next event</button>
    <button type="button" data-instant-now>Now</button>
  </div>
  <p class="error" role="alert" data-error></p>
  <script type="application/json" id="event-instants">${JSON.stringify(input.eventInstants)}</script>
</form>
</section>`;
}

function driftSection(drift: DriftReport | null, now: Date): string {
  if (drift === null) return '';
  const rows = [...drift.intervals].reverse().slice(0, 20).map((i) =>
    `<tr><td>${esc(shortInstant(i.start))}</td><td>${
      i.end === null ? badge('ongoing', 'bad') : esc(shortInstant(i.end))
    }</td><td>${duration(i.duration_ms)}</td><td>${i.target_version ?? '—'}</td><td>${
      esc(describeDrift(i.differed).join('; ') || '—')
    }</td></tr>`
  ).join('');
  const delays = drift.reconciliations.slice(-20).map((r) => ({
    label: `version ${r.target_version}`,
    value: r.delay_ms ?? r.waiting_ms ?? 0,
    text: r.status === 'converged'
      ? duration(r.delay_ms)
      : r.status === 'pending'
      ? `waiting ${duration(r.waiting_ms)}`
      : 'superseded',
  }));
  const total = drift.totals.window_ms;
  return `<section aria-labelledby="drift-h" id="device-drift" data-live-region>
<h2 id="drift-h">Drift and reconciliation</h2>
<p>${count(drift.totals.intervals)} interval(s) out of sync, ${duration(drift.totals.out_of_sync_ms)} in all${
    total === null || total === 0 ? '' : ` (${((drift.totals.out_of_sync_ms / total) * 100).toFixed(1)}% of the time)`
  }; longest ${duration(drift.totals.longest_ms)}. ${
    drift.in_sync_at_end ? 'In sync now.' : `Out of sync now (as of ${when(drift.until, now)}).`
  }</p>
${
    rows === ''
      ? '<p class="muted">Never out of sync.</p>'
      : `<table><caption>Drift intervals, newest first${
        drift.intervals.length > 20 ? ' (last 20)' : ''
      }</caption><thead><tr><th scope="col">Start</th><th scope="col">End</th><th scope="col">Duration</th><th scope="col">Target version</th><th scope="col">What differed</th></tr></thead><tbody>${rows}</tbody></table>`
  }
<h3>Reconciliation delays</h3>
${
    barChart({
      id: 'reconciliation-chart',
      title: 'Time from each target update to the device running it',
      bars: delays,
      empty: 'No target has been set yet.',
    })
  }
</section>`;
}

function eventsSection(input: DeviceInput): string {
  const { events } = input;
  const uuid = input.device.uuid;
  const query = (before: number | null) => {
    const params = new URLSearchParams();
    for (const type of events.types) params.append('type', type);
    if (before !== null) params.set('before', String(before));
    if (input.state.at !== null) params.set('at', input.state.at);
    const text = params.toString();
    return `/devices/${uuid}${text === '' ? '' : `?${text}`}#device-events`;
  };
  const checkboxes = EVENT_TYPES.map((type, i) =>
    `<label class="check"><input type="checkbox" name="type" value="${esc(type)}" id="event-type-${i}"${
      events.types.includes(type) ? ' checked' : ''
    }> ${esc(type)}</label>`
  ).join('');
  const rows = events.events.map((e) => {
    const actor = e.metadata.actor;
    return `<tr><td>${e.aggregate_version}</td><td><time datetime="${esc(e.timestamp)}">${
      esc(shortInstant(e.timestamp))
    }</time></td><td><code>${esc(e.event_type)}</code></td><td>${
      actor === null || actor === undefined
        ? '—'
        : esc(`${actor.type ?? '?'}${actor.id ? ` ${actor.id.slice(0, 8)}` : ''}`)
    }</td><td class="summary">${esc(compact(e.data, 160))}</td></tr>`;
  }).join('');
  const last = events.events[events.events.length - 1];
  const older = events.events.length === events.pageSize && last !== undefined ? last.aggregate_version : null;
  return `<section id="device-events" data-live-region aria-labelledby="events-h">
<h2 id="events-h">Events</h2>
<form method="get" action="/devices/${esc(uuid)}#device-events" class="event-filter">
  <fieldset><legend>Event types (none checked: all)</legend>${checkboxes}</fieldset>
  ${input.state.at === null ? '' : `<input type="hidden" name="at" value="${esc(input.state.at)}">`}
  <button type="submit">Filter events</button>
</form>
${
    rows === ''
      ? '<p class="muted">No events match.</p>'
      : `<table class="events"><caption>Events, newest first${
        events.before === null ? '' : ` (before version ${events.before})`
      }</caption><thead><tr><th scope="col">Version</th><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Actor</th><th scope="col">Data</th></tr></thead><tbody>${rows}</tbody></table>`
  }
<nav class="pager" aria-label="Event pages">
${events.before === null ? '' : `<a href="${esc(query(null))}">Newest events</a>`}
${older === null ? '' : `<a href="${esc(query(older))}" rel="next">Older events</a>`}
</nav>
</section>`;
}

const TRANSPORT_NAMES = { http: 'HTTP', mqtt: 'MQTT' } as const;

const formatGauge = (value: number): string => (Number.isInteger(value) ? String(value) : value.toFixed(2));

function metricsSection(d: DeviceViewLike, t: DeviceTelemetry, now: Date): string {
  const latest = t.latest === null
    ? '<p class="muted">No metrics sample yet: the device has not reported any metric.</p>'
    : `<p>Latest sample ${when(t.latest.reported_at, now)}: ${
      Object.entries(t.latest.values).filter(([, v]) => v !== null).map(([k, v]) =>
        `<code>${esc(k)}</code> ${esc(formatGauge(v!))}`
      ).join(', ') || '<span class="muted">no gauge</span>'
    }.</p>`;
  const charts = t.series.map((s) =>
    `<h3>${esc(s.gauge)}</h3>${
      columnChart({
        id: `metric-${s.gauge}`,
        title: `${s.gauge}, hourly mean over the last day`,
        buckets: s.points.map((p) => ({
          from: p.t,
          label: `${shortInstant(p.t).slice(11, 16)}`,
          value: Number(p.avg.toFixed(2)),
        })),
      })
    }`
  ).join('\n');
  return `<section id="device-metrics" aria-labelledby="metrics-h">
<h2 id="metrics-h">Metrics</h2>
${latest}
${charts}
<p class="muted">Metrics are a time series outside the event log (<code>device_metrics</code>); the whole series:
<a href="/api/v1/devices/${esc(d.uuid)}/metrics">GET /api/v1/devices/${esc(d.uuid)}/metrics</a>.</p>
</section>`;
}

function logsSection(d: DeviceViewLike, t: DeviceTelemetry, now: Date): string {
  const rows = t.logs.map((l) =>
    `<tr><td>${when(l.timestamp, now)}</td><td>${esc(l.level)}${l.is_stderr ? ' (stderr)' : ''}</td><td>${
      l.service_name === null ? '<span class="muted">system</span>' : esc(l.service_name)
    }</td><td class="log-message">${esc(l.message)}</td></tr>`
  ).join('');
  const table = t.logs.length === 0
    ? '<p class="muted">No log line in the last day.</p>'
    : `<table class="events"><caption>The ${t.logs.length} newest log lines of the last day, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Level</th><th scope="col">Service</th><th scope="col">Message</th></tr></thead>
<tbody>${rows}</tbody></table>`;
  return `<section id="device-logs" data-live-region aria-labelledby="logs-h">
<h2 id="logs-h">Logs</h2>
${table}
<p class="muted">Search and page: <a href="/api/v1/devices/${esc(d.uuid)}/logs">GET /api/v1/devices/${
    esc(d.uuid)
  }/logs</a> (<code>since</code>, <code>until</code>, <code>service</code>, <code>level</code>, <code>q</code>); live: <code>/api/v1/devices/${
    esc(d.uuid)
  }/logs/stream</code>.</p>
</section>`;
}

function connectionSection(d: DeviceViewLike, t: DeviceTransport, now: Date): string {
  const item = (term: string, value: string) => `<div><dt>${esc(term)}</dt><dd>${value}</dd></div>`;
  let mqtt: string;
  if (t.mqtt_mode === 'off') mqtt = badge('MQTT off', 'off');
  else if (t.mqtt_credential_issued_at === null) mqtt = `${badge('No credential', 'off')} the device uses HTTP`;
  else if (t.connected === true) mqtt = `${badge('Connected', 'ok')} to the embedded broker`;
  else if (t.connected === false) mqtt = `${badge('Not connected', 'warn')} to the embedded broker`;
  else if (t.mqtt_mode === 'external') mqtt = `${badge('Unknown', 'off')} (the external broker does not say)`;
  else mqtt = `${badge('Unknown', 'off')} (the embedded broker runs in another worker process)`;
  const credential = t.mqtt_credential_issued_at === null
    ? '<span class="muted">none</span>'
    : `issued ${when(t.mqtt_credential_issued_at, now)}`;
  const lastReport = t.last_report === null
    ? '<span class="muted">no state-changing report yet</span>'
    : `over ${TRANSPORT_NAMES[t.last_report.transport]} ${when(t.last_report.at, now)}`;
  const setAt = d.target === null ? null : Date.parse(d.target.updated_at);
  const deliveries = d.target === null
    ? '<span class="muted">no target</span>'
    : t.target_deliveries.length === 0
    ? `<span class="muted">version ${d.target.version} not delivered yet</span>`
    : t.target_deliveries.map((x) =>
      `version ${x.target_version} over ${TRANSPORT_NAMES[x.transport]} ${when(x.delivered_at, now)}${
        setAt === null ? '' : ` (${duration(Math.max(0, Date.parse(x.delivered_at) - setAt))} after it was set)`
      }`
    ).join('<br>');
  return `<section id="device-connection" data-live-region aria-labelledby="connection-h">
<h2 id="connection-h">Connection</h2>
<dl class="identity">
${item('MQTT', mqtt)}
${item('MQTT credential', credential)}
${item('Last report', lastReport)}
${item('Target delivered', deliveries)}
</dl>
</section>`;
}

/** The page body. */
export function renderDevice(input: DeviceInput): string {
  const d = input.device;
  return `<p class="device-sub"><code>${esc(d.uuid)}</code> · ${esc(d.fleet_id)} · ${
    esc(d.device_type)
  } · <a href="/">Back to the fleet</a></p>
${identity(d, input.now)}
${connectionSection(d, input.transport, input.now)}
${actions(d)}
${timeTravel(input)}
${renderDeviceState(input.state, input.now)}
${driftSection(input.drift, input.now)}
${metricsSection(d, input.telemetry, input.now)}
${logsSection(d, input.telemetry, input.now)}
${secretsSection(input.secrets)}
<section aria-labelledby="timeline-h">
<h2 id="timeline-h">Timeline</h2>
<iframe class="timeline" title="Timeline of ${esc(d.device_name)}" src="/api/v1/devices/${
    esc(d.uuid)
  }/timeline" loading="lazy"></iframe>
</section>
${eventsSection(input)}`;
}
