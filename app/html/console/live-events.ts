// The live events page: the global event stream with filters, pause and resume. The page
// script (live-events.js) opens one stream and adds each event at the top of the table.
import { EVENT_TYPES } from './device.ts';
import { esc } from './html.ts';

/** The page body; `filter` pre-fills the form (from the page's query string). */
export function renderLiveEvents(filter: { type: string; aggregate_type: string; aggregate_id: string }): string {
  const aggregateTypes = ['', 'device', 'provisioning_key'].map((t) =>
    `<option value="${t}"${t === filter.aggregate_type ? ' selected' : ''}>${t === '' ? 'Any' : t}</option>`
  ).join('');
  return `<form id="live-filter" class="filters" aria-label="Filter the live events">
  <div class="field"><label for="live-type">Event types (comma-separated)</label>
  <input id="live-type" name="type" list="live-types" value="${
    esc(filter.type)
  }" placeholder="e.g. device.offline,target_state.updated"></div>
  <datalist id="live-types">${EVENT_TYPES.map((t) => `<option value="${esc(t)}"></option>`).join('')}</datalist>
  <div class="field"><label for="live-aggregate-type">Aggregate type</label><select id="live-aggregate-type" name="aggregate_type">${aggregateTypes}</select></div>
  <div class="field"><label for="live-aggregate-id">Aggregate id (e.g. a device uuid)</label><input id="live-aggregate-id" name="aggregate_id" value="${
    esc(filter.aggregate_id)
  }"></div>
  <button type="submit">Apply filters</button>
  <button type="button" id="live-pause" aria-pressed="false">Pause</button>
  <p class="error" role="alert" data-error></p>
</form>
<p id="live-state" class="live-state" role="status" aria-live="polite">Connecting…</p>
<table class="events" id="live-events">
<caption>Events as they are committed, newest first (the last 500 are kept)</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Aggregate</th><th scope="col">Version</th><th scope="col">Actor</th><th scope="col">Data</th></tr></thead>
<tbody></tbody>
</table>`;
}
