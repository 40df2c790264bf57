// The fleet page: counts at the top, filters and search, one page of devices with their
// fleet, type, enabled, sync (drifting since when), last contact and connectivity. The
// counts and the table are live regions the page script refreshes when devices change.
import { badge, count, esc, when } from './html.ts';

/** A device row as the page shows it. */
export type FleetDevice = {
  uuid: string;
  device_name: string;
  device_type: string;
  fleet_id: string;
  is_active: boolean;
  in_sync: boolean;
  drift_since: string | null;
  last_seen_at: string | null;
  connectivity: { status: 'online' | 'lost'; since: string } | null;
  target: { version: number } | null;
};

/** Which devices the page lists. */
export type FleetFilter = {
  q: string;
  fleet: string;
  show: '' | 'drifting' | 'in_sync' | 'disabled' | 'lost';
  page: number;
};

/** What the page is drawn from. */
export type FleetInput = {
  now: Date;
  filter: FleetFilter;
  pageSize: number;
  counts: { total: number; drifting: number; disabled: number; lost: number };
  fleets: readonly string[];
  devices: readonly FleetDevice[];
  total: number;
};

const SHOW_OPTIONS: [FleetFilter['show'], string][] = [
  ['', 'All devices'],
  ['drifting', 'Drifting'],
  ['in_sync', 'In sync'],
  ['disabled', 'Disabled'],
  ['lost', 'Lost (no contact)'],
];

/** The page's query string for a filter (empty parts left out). */
export function fleetQuery(filter: FleetFilter): string {
  const params = new URLSearchParams();
  if (filter.q !== '') params.set('q', filter.q);
  if (filter.fleet !== '') params.set('fleet', filter.fleet);
  if (filter.show !== '') params.set('show', filter.show);
  if (filter.page > 1) params.set('page', String(filter.page));
  const text = params.toString();
  return text === '' ? '/' : `/?${text}`;
}

function row(d: FleetDevice, now: Date): string {
  const sync = d.target === null
    ? badge('No target', 'off')
    : d.in_sync
    ? badge('In sync', 'ok')
    : `${badge('Drifting', 'bad')} <span class="since">since ${when(d.drift_since, now, 'unknown')}</span>`;
  const connectivity = d.connectivity === null
    ? badge('Never seen', 'off')
    : d.connectivity.status === 'lost'
    ? `${badge('Lost', 'warn')} <span class="since">${when(d.connectivity.since, now)}</span>`
    : badge('Online', 'ok');
  return `<tr data-uuid="${esc(d.uuid)}">
<th scope="row"><a href="/devices/${esc(d.uuid)}">${esc(d.device_name)}</a><span class="uuid">${esc(d.uuid)}</span></th>
<td>${esc(d.fleet_id)}</td>
<td>${esc(d.device_type)}</td>
<td>${d.is_active ? badge('Enabled', 'ok') : badge('Disabled', 'off')}</td>
<td>${sync}</td>
<td>${when(d.last_seen_at, now)}</td>
<td>${connectivity}</td>
</tr>`;
}

/** The counts region. */
function counts(input: FleetInput): string {
  const link = (show: FleetFilter['show'], n: number, label: string, tone: string) =>
    `<li class="count ${tone}"><a href="${esc(fleetQuery({ ...input.filter, show, page: 1 }))}"${
      input.filter.show === show ? ' aria-current="true"' : ''
    }><span class="n">${count(n)}</span> ${esc(label)}</a></li>`;
  return `<section id="fleet-counts" class="counts" data-live-region aria-label="Fleet counts${
    input.filter.fleet === '' ? '' : ` in ${esc(input.filter.fleet)}`
  }">
<ul>
${link('', input.counts.total, input.counts.total === 1 ? 'device' : 'devices', 'total')}
${link('drifting', input.counts.drifting, 'drifting', input.counts.drifting > 0 ? 'bad' : 'ok')}
${link('disabled', input.counts.disabled, 'disabled', 'off')}
${link('lost', input.counts.lost, 'lost', input.counts.lost > 0 ? 'warn' : 'ok')}
</ul>
</section>`;
}

/** The page body. */
export function renderFleet(input: FleetInput): string {
  const { filter } = input;
  const pages = Math.max(1, Math.ceil(input.total / input.pageSize));
  const first = input.total === 0 ? 0 : (filter.page - 1) * input.pageSize + 1;
  const last = Math.min(input.total, filter.page * input.pageSize);
  const fleetOptions = ['', ...input.fleets].map((f) =>
    `<option value="${esc(f)}"${f === filter.fleet ? ' selected' : ''}>${f === '' ? 'All fleets' : esc(f)}</option>`
  ).join('');
  const showOptions = SHOW_OPTIONS.map(([value, label]) =>
    `<option value="${value}"${value === filter.show ? ' selected' : ''}>${esc(label)}</option>`
  ).join('');
  const pager = pages <= 1 ? '' : `<nav class="pager" aria-label="Device pages">
${
    filter.page > 1
      ? `<a href="${esc(fleetQuery({ ...filter, page: filter.page - 1 }))}" rel="prev">Previous page</a>`
      : ''
  }
<span>Page ${count(filter.page)} of ${count(pages)}</span>
${
    filter.page < pages
      ? `<a href="${esc(fleetQuery({ ...filter, page: filter.page + 1 }))}" rel="next">Next page</a>`
      : ''
  }
</nav>`;
  const body = input.devices.length === 0
    ? `<p class="empty">No device matches these filters.</p>`
    : `<table class="devices">
<caption>Devices ${count(first)}–${count(last)} of ${count(input.total)}</caption>
<thead><tr><th scope="col">Device</th><th scope="col">Fleet</th><th scope="col">Type</th><th scope="col">Enabled</th><th scope="col">Sync</th><th scope="col">Last seen</th><th scope="col">Connectivity</th></tr></thead>
<tbody>
${input.devices.map((d) => row(d, input.now)).join('\n')}
</tbody>
</table>`;
  return `${counts(input)}
<form class="filters" method="get" action="/" role="search" aria-label="Filter devices">
  <div class="field"><label for="fleet-search">Search</label>
  <input id="fleet-search" type="search" name="q" value="${
    esc(filter.q)
  }" placeholder="name or uuid" maxlength="128"></div>
  <div class="field"><label for="fleet-filter">Fleet</label>
  <select id="fleet-filter" name="fleet">${fleetOptions}</select></div>
  <div class="field"><label for="show-filter">Show</label>
  <select id="show-filter" name="show">${showOptions}</select></div>
  <button type="submit">Apply</button>
  ${filter.q !== '' || filter.fleet !== '' || filter.show !== '' ? '<a href="/" class="reset">Clear filters</a>' : ''}
</form>
<section id="fleet-table" data-live-region aria-label="Devices">
${body}
${pager}
</section>`;
}
