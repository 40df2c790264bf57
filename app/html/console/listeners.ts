// The listeners page: each listener's lag (a chart, then the numbers) and its dead letters,
// which can be redelivered (the running listener retries them) or discarded.
import { barChart } from './charts.ts';
import { badge, count, esc, when } from './html.ts';

/** A listener's status (GET /api/v1/listeners). */
export type ListenerRow = {
  name: string;
  owner: string | null;
  events_processed: number;
  last_event_at: string | null;
  dead_letters: number;
  events_behind: number;
  seconds_behind: number;
};

/** A dead letter (GET /api/v1/dead-letters). */
export type DeadLetterRow = {
  id: number;
  listener_name: string;
  event_id: string;
  event_type: string;
  aggregate_id: string;
  error: string;
  attempts: number;
  status: 'dead' | 'redeliver' | 'redelivered' | 'discarded';
  last_failed_at: string;
};

const tone = { dead: 'bad', redeliver: 'info', redelivered: 'ok', discarded: 'off' } as const;

/** The page body. */
export function renderListeners(input: {
  now: Date;
  listeners: readonly ListenerRow[];
  letters: readonly DeadLetterRow[];
  filter: { listener: string; status: string };
}): string {
  const listenerRows = input.listeners.map((l) =>
    `<tr><th scope="row">${esc(l.name)}</th><td>${
      l.owner === null ? badge('Not running', 'off') : badge('Running', 'ok')
    }</td><td>${count(l.events_processed)}</td><td>${count(l.events_behind)}</td><td>${
      l.seconds_behind.toFixed(1)
    } s</td><td>${when(l.last_event_at, input.now)}</td><td>${
      l.dead_letters === 0 ? '0' : `${badge(String(l.dead_letters), 'bad')}`
    }</td><td>${
      l.dead_letters === 0
        ? ''
        : `<button type="button" data-dead-letters="redeliver" data-listener="${
          esc(l.name)
        }" aria-label="Redeliver every dead letter of ${esc(l.name)}">Redeliver all</button>`
    }</td></tr>`
  ).join('');
  const letterRows = input.letters.map((d) => {
    const open = d.status === 'dead' || d.status === 'redeliver';
    return `<tr><td>${d.id}</td><td>${esc(d.listener_name)}</td><td><code>${
      esc(d.event_type)
    }</code><span class="uuid">${esc(d.aggregate_id)}</span></td><td>${badge(d.status, tone[d.status])}</td><td>${
      count(d.attempts)
    }</td><td>${when(d.last_failed_at, input.now)}</td><td class="summary">${
      esc(d.error.split('\n')[0]!.slice(0, 200))
    }</td><td>${
      open
        ? `${
          d.status === 'dead'
            ? `<button type="button" data-dead-letters="redeliver" data-id="${d.id}" aria-label="Redeliver dead letter ${d.id}">Redeliver</button>`
            : ''
        } <button type="button" class="danger" data-dead-letters="discard" data-id="${d.id}" aria-label="Discard dead letter ${d.id}">Discard</button>`
        : ''
    }</td></tr>`;
  }).join('');
  const listenerOptions = ['', ...input.listeners.map((l) => l.name)].map((n) =>
    `<option value="${esc(n)}"${n === input.filter.listener ? ' selected' : ''}>${
      n === '' ? 'All listeners' : esc(n)
    }</option>`
  ).join('');
  const statusOptions = ['', 'dead', 'redeliver', 'redelivered', 'discarded'].map((s) =>
    `<option value="${s}"${s === input.filter.status ? ' selected' : ''}>${s === '' ? 'All' : s}</option>`
  ).join('');
  return `<section id="listeners" data-live-region aria-labelledby="listeners-h">
<h2 id="listeners-h">Listeners</h2>
${
    barChart({
      id: 'lag-chart',
      title: 'Events each listener still has to handle',
      bars: input.listeners.map((l) => ({
        label: l.name,
        value: l.events_behind,
        text: `${count(l.events_behind)} behind`,
      })),
      empty: 'No listener has run yet.',
    })
  }
${
    listenerRows === ''
      ? ''
      : `<table><caption>Listeners and their lag</caption><thead><tr><th scope="col">Listener</th><th scope="col">Status</th><th scope="col">Handled</th><th scope="col">Events behind</th><th scope="col">Behind by</th><th scope="col">Last event</th><th scope="col">Open dead letters</th><th scope="col">Actions</th></tr></thead><tbody>${listenerRows}</tbody></table>`
  }
</section>
<form method="get" class="filters" aria-label="Filter dead letters">
  <div class="field"><label for="letter-listener">Listener</label><select id="letter-listener" name="listener">${listenerOptions}</select></div>
  <div class="field"><label for="letter-status">Status</label><select id="letter-status" name="status">${statusOptions}</select></div>
  <button type="submit">Filter</button>
</form>
<section id="dead-letters" data-live-region aria-labelledby="letters-h">
<h2 id="letters-h">Dead letters</h2>
${
    letterRows === ''
      ? '<p class="muted">No dead letters.</p>'
      : `<table><caption>Dead letters, newest first</caption><thead><tr><th scope="col">Id</th><th scope="col">Listener</th><th scope="col">Event</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last failed</th><th scope="col">Error</th><th scope="col">Actions</th></tr></thead><tbody>${letterRows}</tbody></table>`
  }
</section>`;
}
