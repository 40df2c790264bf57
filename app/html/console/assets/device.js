// The device page's script: enable/disable with a reason, the target editor (inline JSON
// errors, If-Match, the conflict view with both versions), and the time slider (the state at
// any instant, drawn by the server from the replay API's fold).
import { api, ApiError, clearError, refreshRegions, showError, signInAgain, submitting, toast } from './console.js';

const main = document.getElementById('main');

// --- enable / disable

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.id !== 'toggle-active') return;
  event.preventDefault();
  const error = form.querySelector('[data-error]');
  const enable = form.dataset.active !== 'true';
  const reason = form.elements.reason.value.trim();
  void submitting(form, error, async () => {
    const result = await api('PATCH', `/api/v1/devices/${form.dataset.uuid}/active`, {
      body: { is_active: enable, ...(reason === '' ? {} : { reason }) },
    });
    toast(
      result.body.changed
        ? `Device ${enable ? 'enabled' : 'disabled'}${reason === '' ? '' : `: ${reason}`} (${result.body.event_type}).`
        : `The device was already ${enable ? 'enabled' : 'disabled'}; nothing changed.`,
    );
    await refreshRegions({ all: true });
  });
});

// --- the target editor

/** Where a JSON.parse error is, as "line L, column C", from its message or position. */
function jsonErrorText(text, error) {
  const position = /position (\d+)/.exec(error.message);
  if (position === null || /line \d+/.test(error.message)) return error.message;
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${error.message} (line ${line}, column ${column})`;
}

/** The editor's JSON as a target body, or an error message. */
function readTarget(textarea) {
  let value;
  try {
    value = JSON.parse(textarea.value);
  } catch (error) {
    return { error: `Not valid JSON: ${jsonErrorText(textarea.value, error)}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { error: 'The target must be a JSON object: {"apps": {…}, "config": {…}}' };
  }
  if (value.apps === null || typeof value.apps !== 'object' || Array.isArray(value.apps)) {
    return { error: 'The target needs "apps": an object keyed by app id (it may be {}).' };
  }
  return { value };
}

const pretty = (value) => JSON.stringify(value, null, 2);

/** A <pre> of `text` whose lines not in `other` are marked. */
function diffPre(text, other, labelId) {
  const pre = document.createElement('pre');
  pre.tabIndex = 0;
  pre.setAttribute('aria-labelledby', labelId);
  const otherLines = new Set(other.split('\n'));
  for (const line of text.split('\n')) {
    const node = otherLines.has(line) ? document.createTextNode(`${line}\n`) : document.createElement('mark');
    if (node.nodeType !== Node.TEXT_NODE) node.textContent = `${line}\n`;
    pre.append(node);
  }
  return pre;
}

/** Shows both versions after a 412: what you wrote and what is there now. */
async function showConflict(form, mine) {
  const uuid = form.dataset.uuid;
  const current = (await api('GET', `/api/v1/devices/${uuid}`)).body;
  const theirs = current.target === null
    ? { apps: {}, config: {} }
    : { apps: current.target.apps, config: current.target.config };
  const theirVersion = current.target?.version ?? 0;
  const panel = document.getElementById('target-conflict');
  panel.replaceChildren();
  const heading = document.createElement('h3');
  heading.id = 'conflict-h';
  heading.textContent =
    `Conflict: the target changed to version ${theirVersion} while you were editing version ${form.dataset.version}`;
  const note = document.createElement('p');
  note.textContent =
    'Your change was not saved, and theirs was not overwritten. Marked lines differ between the two versions.';
  const sides = document.createElement('div');
  sides.className = 'side-by-side';
  const figure = (id, caption, text, other) => {
    const f = document.createElement('figure');
    const c = document.createElement('figcaption');
    c.id = id;
    c.textContent = caption;
    f.append(c, diffPre(text, other, id));
    return f;
  };
  sides.append(
    figure('conflict-mine', `Your version (edited from version ${form.dataset.version})`, pretty(mine), pretty(theirs)),
    figure('conflict-theirs', `Current version ${theirVersion}`, pretty(theirs), pretty(mine)),
  );
  const keepTheirs = document.createElement('button');
  keepTheirs.type = 'button';
  keepTheirs.textContent = `Discard mine and edit version ${theirVersion}`;
  keepTheirs.addEventListener('click', () => {
    form.elements.target.value = pretty(theirs);
    setVersion(form, theirVersion);
    panel.hidden = true;
    form.elements.target.focus();
  });
  const overwrite = document.createElement('button');
  overwrite.type = 'button';
  overwrite.className = 'danger';
  overwrite.textContent = `Save mine over version ${theirVersion}`;
  overwrite.addEventListener('click', () => {
    setVersion(form, theirVersion);
    panel.hidden = true;
    form.requestSubmit();
  });
  const buttons = document.createElement('div');
  buttons.className = 'buttons';
  buttons.append(keepTheirs, overwrite);
  panel.append(heading, note, sides, buttons);
  panel.hidden = false;
  panel.focus();
}

function setVersion(form, version) {
  form.dataset.version = String(version);
  form.querySelector('[data-editing-version]').textContent = String(version);
}

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.id !== 'target-editor') return;
  event.preventDefault();
  const error = form.querySelector('[data-error]');
  const textarea = form.elements.target;
  const parsed = readTarget(textarea);
  if (parsed.error !== undefined) {
    clearError(error);
    error.textContent = parsed.error;
    textarea.setAttribute('aria-invalid', 'true');
    textarea.focus();
    return;
  }
  textarea.removeAttribute('aria-invalid');
  void submitting(form, error, async () => {
    try {
      const result = await api('POST', `/api/v1/devices/${form.dataset.uuid}/target-state`, {
        body: parsed.value,
        headers: { 'If-Match': `"${form.dataset.version}"` },
      });
      setVersion(form, result.body.version);
      document.getElementById('target-conflict').hidden = true;
      toast(`Target saved as version ${result.body.version}.`);
      await refreshRegions({ all: false });
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 412) return showConflict(form, parsed.value);
      if (failure instanceof ApiError && failure.status === 400) textarea.setAttribute('aria-invalid', 'true');
      throw failure;
    }
  });
});

// --- the time slider

const travel = document.getElementById('time-travel');
const slider = document.getElementById('instant-slider');
const output = document.getElementById('instant-value');
const instants = JSON.parse(document.getElementById('event-instants')?.textContent ?? '[]');
const from = Number(travel.dataset.from);
const to = Number(travel.dataset.to);
let shownAt = new URLSearchParams(location.search).get('at');
let request = 0;

const instantOf = (position) => new Date(Math.round(from + ((to - from) * position) / 1000)).toISOString();
const positionOf = (ms) => (to > from ? Math.round(((ms - from) / (to - from)) * 1000) : 1000);
const label = (iso) => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;

/** Shows the state at `at` (null: now) in place, and keeps the instant in the address. */
async function showInstant(at) {
  const mine = ++request;
  const error = travel.querySelector('[data-error]');
  const url = new URL(location.href);
  if (at === null) url.searchParams.delete('at');
  else url.searchParams.set('at', at);
  url.searchParams.delete('before');
  const part = new URL(url);
  part.searchParams.set('part', 'state');
  part.hash = '';
  try {
    const response = await fetch(part.pathname + part.search, { credentials: 'same-origin' });
    if (response.status === 401) return signInAgain();
    const text = await response.text();
    if (mine !== request) return;
    if (!response.ok) {
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      throw new ApiError(response.status, body?.error?.code ?? 'error', body?.error?.message ?? response.statusText);
    }
    const fresh = new DOMParser().parseFromString(text, 'text/html').getElementById('device-state');
    document.getElementById('device-state').replaceWith(document.importNode(fresh, true));
    history.replaceState(null, '', url.pathname + url.search + url.hash);
    shownAt = at;
    output.textContent = at === null ? 'now' : label(at);
    slider.setAttribute('aria-valuetext', at === null ? 'now' : label(at));
    travel.elements.at.value = at ?? '';
    moveMarker(at === null ? null : Date.parse(at));
    clearError(error);
  } catch (failure) {
    if (mine === request) showError(error, failure);
  }
}

function moveMarker(ms) {
  const strip = document.getElementById('drift-strip');
  if (strip === null) return;
  let marker = strip.querySelector('.strip-marker');
  if (ms === null) return marker?.remove();
  if (marker === null) {
    marker = document.createElementNS('http://www.w3.org/2000/svg', 'line');
    marker.setAttribute('class', 'strip-marker');
    marker.setAttribute('y1', '0');
    marker.setAttribute('y2', '14');
    strip.append(marker);
  }
  const x = String(((Math.min(Math.max(ms, from), to) - from) / Math.max(1, to - from)) * 1000);
  marker.setAttribute('x1', x);
  marker.setAttribute('x2', x);
}

let debounce = null;
slider.addEventListener('input', () => {
  const at = Number(slider.value) >= 1000 ? null : instantOf(Number(slider.value));
  output.textContent = at === null ? 'now' : label(at);
  clearTimeout(debounce);
  debounce = setTimeout(() => void showInstant(at), 150);
});

travel.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = travel.elements.at.value.trim();
  if (text === '') return void showInstant(null);
  const ms = Date.parse(text);
  if (Number.isNaN(ms) || !/(Z|[+-]\d\d:?\d\d)$/.test(text)) {
    showError(
      travel.querySelector('[data-error]'),
      new Error('Write an ISO-8601 instant with a time zone, e.g. 2026-11-27T10:00:00Z'),
    );
    return;
  }
  slider.value = String(Math.min(1000, Math.max(0, positionOf(ms))));
  void showInstant(new Date(ms).toISOString());
});

travel.addEventListener('click', (event) => {
  const button = event.target.closest('button');
  if (button === null) return;
  if (button.matches('[data-instant-now]')) {
    slider.value = '1000';
    void showInstant(null);
  } else if (button.matches('[data-event-step]')) {
    const current = shownAt === null ? to : Date.parse(shownAt);
    const step = Number(button.dataset.eventStep);
    const target = step < 0 ? [...instants].reverse().find((t) => t < current) : instants.find((t) => t > current);
    if (target === undefined) return toast(step < 0 ? 'No earlier event.' : 'No later event.');
    slider.value = String(Math.min(1000, Math.max(0, positionOf(target))));
    void showInstant(new Date(target).toISOString());
  }
});

main?.setAttribute('data-device-ready', 'true');
