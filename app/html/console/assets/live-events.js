// The live events page: ONE stream of the global feed (with the filters in the form),
// newest first. Pause closes the stream and remembers where it was; resume opens it after
// that cursor, so nothing committed meanwhile is missed.
import { api, clearError, openLiveStream, showError } from './console.js';

const form = document.getElementById('live-filter');
const pause = document.getElementById('live-pause');
const state = document.getElementById('live-state');
const body = document.querySelector('#live-events tbody');
const MAX_ROWS = 500;
let source = null;
let lastId = null;
let received = 0;

function query(after) {
  const params = new URLSearchParams();
  for (const name of ['type', 'aggregate_type', 'aggregate_id']) {
    const value = form.elements[name].value.trim();
    if (value !== '') params.set(name, value);
  }
  if (after !== null) params.set('after', after);
  return params.toString();
}

function cell(text, code = false) {
  const td = document.createElement('td');
  if (code) {
    const c = document.createElement('code');
    c.textContent = text;
    td.append(c);
  } else td.textContent = text;
  return td;
}

function addRow(event) {
  const row = document.createElement('tr');
  const time = cell('');
  const t = document.createElement('time');
  t.dateTime = event.timestamp;
  t.textContent = `${event.timestamp.slice(0, 10)} ${event.timestamp.slice(11, 23)}Z`;
  time.append(t);
  const aggregate = document.createElement('td');
  if (event.aggregate_type === 'device') {
    const a = document.createElement('a');
    a.href = `/devices/${event.aggregate_id}`;
    a.textContent = event.aggregate_id;
    aggregate.append(`device `, a);
  } else aggregate.textContent = `${event.aggregate_type} ${event.aggregate_id}`;
  const actor = event.metadata?.actor;
  const data = JSON.stringify(event.data);
  row.append(
    time,
    cell(event.event_type, true),
    aggregate,
    cell(String(event.aggregate_version)),
    cell(actor ? `${actor.type}${actor.id ? ` ${String(actor.id).slice(0, 8)}` : ''}` : '—'),
    cell(data.length > 200 ? `${data.slice(0, 199)}…` : data),
  );
  row.lastElementChild.className = 'summary';
  body.prepend(row);
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
}

function start() {
  source?.close();
  source = openLiveStream(query(lastId), (message) => {
    lastId = message.lastEventId || lastId;
    received += 1;
    addRow(JSON.parse(message.data));
    state.textContent = `Live: ${received} event(s) received.`;
  });
  source.addEventListener('open', () => (state.textContent = `Live: ${received} event(s) received.`));
  pause.textContent = 'Pause';
  pause.setAttribute('aria-pressed', 'false');
}

function stop() {
  source?.close();
  source = null;
  pause.textContent = 'Resume';
  pause.setAttribute('aria-pressed', 'true');
  state.textContent = `Paused after ${received} event(s); resuming shows what arrived meanwhile.`;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = form.querySelector('[data-error]');
  // a filter the API refuses is shown with its message (an EventSource cannot read it)
  try {
    await api('GET', `/api/v1/events?${query(null)}&limit=1`);
    clearError(error);
  } catch (failure) {
    return showError(error, failure);
  }
  lastId = null;
  body.replaceChildren();
  received = 0;
  history.replaceState(null, '', `/events${query(null) === '' ? '' : `?${query(null)}`}`);
  start();
});

pause.addEventListener('click', () => (source === null ? start() : stop()));

start();
