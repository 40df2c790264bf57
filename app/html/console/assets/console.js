// devicetrail console: the script every console page loads (a plain ES module, no build step).
// It calls the API with the session cookie and the page's CSRF token, shows every API error
// with its message, keeps the page's live regions fresh from ONE event stream per page, and
// runs the actions of the keys, webhooks, listeners and integrity pages. The admin token is
// never seen here: the session cookie is HttpOnly.

const csrfToken = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

/** An API error: status, code and the API's message. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** Back to the sign-in page, then here. */
export function signInAgain() {
  location.assign(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
}

/** Calls the API; resolves with {status, body, headers}, rejects with an ApiError carrying the API's message. */
export async function api(method, path, options = {}) {
  const headers = { Accept: 'application/json', ...options.headers };
  if (!['GET', 'HEAD'].includes(method)) headers['X-CSRF-Token'] = csrfToken;
  const init = { method, headers, credentials: 'same-origin' };
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, 'network_error', `The server could not be reached (${error.message}).`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text === '' ? null : JSON.parse(text);
  } catch {
    body = null;
  }
  if (response.status === 401) signInAgain();
  if (!response.ok) {
    throw new ApiError(
      response.status,
      body?.error?.code ?? 'error',
      body?.error?.message ?? `${response.status} ${response.statusText}`,
      body?.error?.details,
    );
  }
  return { status: response.status, body, headers: response.headers };
}

/** Shows an error (an ApiError's message and each field problem) in `element`, or the page's alert. */
export function showError(element, error) {
  const target = element ?? document.getElementById('page-error');
  if (target === null) return;
  target.replaceChildren();
  const message = error instanceof ApiError && error.status > 0
    ? `${error.message} (${error.status} ${error.code})`
    : String(error?.message ?? error);
  target.append(document.createTextNode(message));
  if (error instanceof ApiError && Array.isArray(error.details) && error.details.length > 1) {
    const list = document.createElement('ul');
    for (const d of error.details) {
      const item = document.createElement('li');
      item.textContent = `${d.field}: ${d.message}`;
      list.append(item);
    }
    target.append(list);
  }
}

/** Clears an error shown by showError. */
export function clearError(element) {
  (element ?? document.getElementById('page-error'))?.replaceChildren();
}

/** A short confirmation in the page's status line. */
export function toast(message) {
  const element = document.getElementById('toast');
  if (element === null) return;
  element.textContent = message;
  element.classList.add('shown');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => element.classList.remove('shown'), 6000);
}

/** A modal confirmation; resolves with {confirmed, reason}. */
export function confirmDialog({ title, message, confirmText, reasonLabel }) {
  return new Promise((resolve) => {
    const dialog = document.createElement('dialog');
    dialog.setAttribute('aria-labelledby', 'confirm-title');
    dialog.innerHTML = `<form method="dialog" class="dialog">
<h2 id="confirm-title"></h2><p class="message"></p>
${reasonLabel ? '<label for="confirm-reason"></label><input id="confirm-reason" maxlength="500">' : ''}
<div class="buttons"><button value="cancel" type="submit">Cancel</button><button value="confirm" type="submit" class="danger"></button></div>
</form>`;
    dialog.querySelector('h2').textContent = title;
    dialog.querySelector('.message').textContent = message;
    dialog.querySelector('button[value="confirm"]').textContent = confirmText;
    if (reasonLabel) dialog.querySelector('label').textContent = reasonLabel;
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      const reason = dialog.querySelector('#confirm-reason')?.value.trim() ?? '';
      resolve({ confirmed: dialog.returnValue === 'confirm', reason });
      dialog.remove();
    });
    dialog.showModal();
  });
}

// --- live regions: the page is fetched again and each [data-live-region] swapped by id

let refreshing = false;
let again = false;
let lastRefresh = 0;
let timer = null;
const MIN_GAP_MS = 400;

/** A selector that finds `element` again in a refreshed region (its id, or its first data attribute). */
function selectorOf(element) {
  if (element.id) return `#${CSS.escape(element.id)}`;
  for (const attribute of element.attributes) {
    if (attribute.name.startsWith('data-')) return `[${attribute.name}="${CSS.escape(attribute.value)}"]`;
  }
  return null;
}

/**
 * Fetches the page again and replaces each live region whose content changed. `all` also
 * replaces regions marked "on-demand" (forms) even when they hold the focus.
 */
export async function refreshRegions({ all = false } = {}) {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  try {
    const response = await fetch(location.pathname + location.search, {
      credentials: 'same-origin',
      headers: { Accept: 'text/html' },
    });
    if (response.redirected && new URL(response.url).pathname === '/sign-in') return signInAgain();
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
    for (const region of document.querySelectorAll('[data-live-region][id]')) {
      const next = fresh.getElementById(region.id);
      if (next === null || next.innerHTML === region.innerHTML) continue;
      const focused = region.contains(document.activeElement) ? document.activeElement : null;
      if (!all && region.dataset.liveRegion === 'on-demand' && focused !== null) continue;
      const selector = focused === null ? null : selectorOf(focused);
      const imported = document.importNode(next, true);
      region.replaceWith(imported);
      if (selector !== null) imported.querySelector(selector)?.focus({ preventScroll: true });
    }
    document.dispatchEvent(new CustomEvent('console:refreshed'));
  } catch {
    // a failed refresh is retried on the next event
  } finally {
    refreshing = false;
    lastRefresh = Date.now();
    if (again) {
      again = false;
      scheduleRefresh();
    }
  }
}

/** Refreshes soon: at once, or after a short gap so a burst of events makes one refresh. */
export function scheduleRefresh() {
  if (timer !== null) return;
  const wait = Math.max(0, MIN_GAP_MS - (Date.now() - lastRefresh));
  timer = setTimeout(() => {
    timer = null;
    void refreshRegions();
  }, wait);
}

const liveStatus = (text) => {
  const element = document.getElementById('live-status');
  if (element !== null && element.textContent !== text) element.textContent = text;
};

/**
 * The page's one event stream (GET /api/v1/events/stream with the session cookie): every
 * event refreshes the live regions. A stream the server ends because the session ended sends
 * the browser back to the sign-in page.
 */
export function openLiveStream(query, onEvent) {
  const source = new EventSource(`/api/v1/events/stream${query === '' ? '' : `?${query}`}`);
  source.addEventListener('open', () => liveStatus('Live: this page updates as events arrive.'));
  source.addEventListener('message', onEvent);
  source.addEventListener('error', async (event) => {
    if (event instanceof MessageEvent && event.data) {
      // the server ended the stream: credentials revoked, or the session over
      source.close();
      liveStatus('Live updates stopped: the session ended.');
      await api('GET', '/console/session').catch(() => undefined);
      return;
    }
    liveStatus(source.readyState === EventSource.CLOSED ? 'Live updates stopped.' : 'Reconnecting to live updates…');
    if (source.readyState === EventSource.CLOSED) await api('GET', '/console/session').catch(() => undefined);
  });
  return source;
}

// --- page actions, by delegation (regions are replaced, listeners stay)

async function onClick(event) {
  const button = event.target.closest('button');
  if (button === null) return;
  try {
    if (button.matches('[data-sign-out]')) {
      await api('DELETE', '/console/session');
      location.assign('/sign-in');
    } else if (button.matches('[data-copy]')) {
      const input = document.getElementById(button.dataset.copy);
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        document.execCommand('copy');
      }
      toast('Copied to the clipboard.');
    } else if (button.matches('[data-revoke-key]')) {
      const answer = await confirmDialog({
        title: 'Revoke provisioning key',
        message: `${
          button.getAttribute('aria-label')
        }: devices can no longer register with it. Devices already registered keep working.`,
        confirmText: 'Revoke key',
        reasonLabel: 'Reason (optional)',
      });
      if (!answer.confirmed) return;
      await api('DELETE', `/api/v1/provisioning-keys/${button.dataset.revokeKey}`, {
        ...(answer.reason === '' ? {} : { body: { reason: answer.reason } }),
      });
      toast('Provisioning key revoked.');
      await refreshRegions({ all: true });
    } else if (button.matches('[data-delete-webhook]')) {
      const answer = await confirmDialog({
        title: 'Delete webhook',
        message: 'Its pending deliveries are cancelled; delivered history stays.',
        confirmText: 'Delete webhook',
      });
      if (!answer.confirmed) return;
      await api('DELETE', `/api/v1/webhooks/${button.dataset.deleteWebhook}`);
      toast('Webhook deleted.');
      if (button.dataset.then) location.assign(button.dataset.then);
      else await refreshRegions({ all: true });
    } else if (button.matches('[data-dead-letters]')) {
      const action = button.dataset.deadLetters;
      const body = button.dataset.id ? { ids: [Number(button.dataset.id)] } : { listener: button.dataset.listener };
      const result = await api('POST', `/api/v1/dead-letters/${action}`, { body });
      toast(
        action === 'redeliver'
          ? `${result.body.requested} dead letter(s) queued: the running listener retries them.`
          : `${result.body.discarded} dead letter(s) discarded.`,
      );
      await refreshRegions({ all: true });
    } else if (button.id === 'run-verify') {
      button.disabled = true;
      const result = await api('POST', '/api/v1/integrity/checks');
      toast(
        result.body.check.status === 'running'
          ? 'Verify is running; this page shows the result when it ends.'
          : `Verify ${result.body.check.status}.`,
      );
      await refreshRegions({ all: true });
    } else return;
    clearError();
  } catch (error) {
    showError(button.closest('form, section')?.querySelector('[data-error]') ?? null, error);
  }
}

/** The form's fields, without empty ones. */
const fields = (form) =>
  Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v).trim()]).filter(([, v]) => v !== ''));

async function onSubmit(event) {
  const form = event.target;
  const errorElement = form.querySelector('[data-error]');
  if (form.id === 'create-key') {
    event.preventDefault();
    const f = fields(form);
    const body = { fleet_id: f.fleet_id };
    if (f.description) body.description = f.description;
    if (f.expires_at) body.expires_at = f.expires_at;
    if (f.max_devices) body.max_devices = Number(f.max_devices);
    await submitting(form, errorElement, async () => {
      const result = await api('POST', '/api/v1/provisioning-keys', { body });
      const panel = document.getElementById('new-key');
      document.getElementById('new-key-value').value = result.body.key;
      panel.hidden = false;
      panel.focus();
      form.reset();
      await refreshRegions({ all: true });
    });
  } else if (form.id === 'create-webhook') {
    event.preventDefault();
    const f = fields(form);
    const body = { url: f.url, event_types: (f.event_types ?? '').split(',').map((t) => t.trim()).filter(Boolean) };
    if (f.description) body.description = f.description;
    if (f.secret) body.secret = f.secret;
    await submitting(form, errorElement, async () => {
      const result = await api('POST', '/api/v1/webhooks', { body });
      const panel = document.getElementById('new-webhook');
      document.getElementById('new-webhook-secret').value = result.body.secret;
      panel.hidden = false;
      panel.focus();
      form.reset();
      await refreshRegions({ all: true });
    });
  }
}

/** Runs a form's request with its button disabled, showing any error in the form. */
export async function submitting(form, errorElement, work) {
  const buttons = form.querySelectorAll('button[type="submit"], button:not([type])');
  buttons.forEach((b) => (b.disabled = true));
  clearError(errorElement);
  try {
    await work();
  } catch (error) {
    showError(errorElement, error);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

document.addEventListener('click', (event) => void onClick(event));
document.addEventListener('submit', (event) => void onSubmit(event));

const streamQuery = document.body.dataset.liveStream;
if (streamQuery !== undefined) openLiveStream(streamQuery, scheduleRefresh);

// regions that change without an event (webhook deliveries, a running verify) are polled
setInterval(() => {
  const poll = document.querySelector('[data-live-region][data-poll]');
  if (poll !== null && !document.hidden && Date.now() - lastRefresh >= Number(poll.dataset.poll)) {
    void refreshRegions();
  }
}, 500);
