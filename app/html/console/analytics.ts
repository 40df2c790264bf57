// The analytics page: the seed's questions as pictures. Target changes and reports over
// time, the most active devices, reconciliation delay percentiles, devices drifting now.
import type { Analytics } from '../../../domain/replay/analytics.ts';
import { barChart, columnChart } from './charts.ts';
import { count, duration, esc, when } from './html.ts';

/** Events per bucket of the window. */
export type Series = readonly { from: string; label: string; value: number }[];

export const WINDOWS = ['1h', '6h', '24h', '7d', '30d'] as const;

/** Delivery and convergence times per transport (issue #18), as a table. */
function transportTable(stats: TransportBreakdown): string {
  const row = (name: string, s: TransportBreakdown['http']) =>
    `<tr><th scope="row">${esc(name)}</th><td>${count(s.delivered)}</td><td>${duration(s.delivery_ms.p50)}</td><td>${
      duration(s.delivery_ms.p90)
    }</td><td>${count(s.converged)}</td><td>${duration(s.convergence_ms.p50)}</td><td>${
      duration(s.convergence_ms.p90)
    }</td></tr>`;
  return `<table id="transport-times">
<caption>Per transport: target update → delivered over it, and → reached by a report over it</caption>
<thead><tr><th scope="col">Transport</th><th scope="col">Delivered</th><th scope="col">Delivery p50</th><th scope="col">p90</th><th scope="col">Converged</th><th scope="col">Convergence p50</th><th scope="col">p90</th></tr></thead>
<tbody>${row('HTTP', stats.http)}${row('MQTT', stats.mqtt)}</tbody>
</table>`;
}

type TransportBreakdown = Analytics['reconciliation']['by_transport'];

/** The page body. */
export function renderAnalytics(input: {
  now: Date;
  window: string;
  analytics: Analytics;
  targetSeries: Series;
  reportSeries: Series;
}): string {
  const a = input.analytics;
  const options = WINDOWS.map((w) => `<option value="${w}"${w === input.window ? ' selected' : ''}>last ${w}</option>`)
    .join('');
  const top = (list: Analytics['reports']['top']) =>
    list.map((d) => ({
      label: d.device_name ?? d.uuid,
      value: d.count,
      text: `${count(d.count)} (${d.per_hour.toFixed(1)}/h)`,
    }));
  // the chart is one image: the devices are links below it
  const links = (list: Analytics['reports']['top']) =>
    list.length === 0
      ? ''
      : `<p class="device-links">Open: ${
        list.map((d) => `<a href="/devices/${esc(d.uuid)}">${esc(d.device_name ?? d.uuid)}</a>`).join(', ')
      }</p>`;
  const delays = a.reconciliation.delay_ms;
  const percentiles = (['p50', 'p90', 'p99', 'max'] as const).filter((k) => delays[k] !== null).map((k) => ({
    label: k,
    value: delays[k]!,
    text: duration(delays[k]),
  }));
  const drifting = a.drifting_now.devices.slice(0, 10).map((d) =>
    `<li><a href="/devices/${esc(d.uuid)}">${esc(d.device_name)}</a> (${esc(d.fleet_id)}) drifting since ${
      when(d.drift_since, input.now, 'unknown')
    }</li>`
  ).join('');
  return `<form method="get" class="filters" aria-label="Analytics window">
  <div class="field"><label for="analytics-window">Window</label><select id="analytics-window" name="window">${options}</select></div>
  <button type="submit">Show</button>
</form>
<p class="muted">From ${esc(a.window.from)} to ${esc(a.window.to)}.</p>
<div class="charts">
<section class="card" aria-labelledby="target-changes-h">
<h2 id="target-changes-h">Target changes over time</h2>
<p>${count(a.target_changes.total)} target change(s) on ${count(a.target_changes.devices)} device(s), ${
    a.target_changes.per_hour.toFixed(1)
  } per hour.</p>
${columnChart({ id: 'target-series', title: 'Target changes per interval', buckets: input.targetSeries })}
</section>
<section class="card" aria-labelledby="reports-h">
<h2 id="reports-h">State reports over time</h2>
<p>${count(a.reports.total)} state-changing report(s) from ${count(a.reports.devices)} device(s).</p>
${columnChart({ id: 'report-series', title: 'State reports per interval', buckets: input.reportSeries })}
</section>
<section class="card" aria-labelledby="active-h">
<h2 id="active-h">Most active devices</h2>
${
    barChart({
      id: 'active-reports',
      title: 'Devices that reported most',
      bars: top(a.reports.top),
      empty: 'No report in this window.',
    })
  }
<h3>Most re-targeted</h3>
${
    barChart({
      id: 'active-targets',
      title: 'Devices whose target changed most',
      bars: top(a.target_changes.top),
      empty: 'No target change in this window.',
    })
  }
${links(a.target_changes.top)}
</section>
<section class="card" aria-labelledby="delays-h">
<h2 id="delays-h">Reconciliation delay</h2>
<p>${count(a.reconciliation.targets)} target(s) set: ${count(a.reconciliation.converged)} reached, ${
    count(a.reconciliation.pending)
  } pending, ${count(a.reconciliation.superseded)} superseded.</p>
${
    barChart({
      id: 'delay-percentiles',
      title: 'Time from a target update to the device running it (percentiles)',
      bars: percentiles,
      empty: 'No device reached a target in this window.',
    })
  }
${transportTable(a.reconciliation.by_transport)}
</section>
<section class="card" aria-labelledby="drifting-h">
<h2 id="drifting-h">Drifting now: ${count(a.drifting_now.count)}</h2>
${drifting === '' ? '<p class="muted">Every device is in sync.</p>' : `<ul>${drifting}</ul>`}
</section>
</div>`;
}
