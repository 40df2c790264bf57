// The webhooks pages: create (the signing secret shown once), list and delete; one webhook's
// deliveries with every attempt.
import { badge, count, esc, shortInstant, when } from './html.ts';

/** A webhook as the page shows it (never its secret). */
export type WebhookRow = {
  id: string;
  url: string;
  event_types: readonly string[];
  description: string | null;
  created_at: string;
  deleted_at: string | null;
};

/** A delivery with its attempts. */
export type DeliveryRow = {
  id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'succeeded' | 'failed' | 'cancelled';
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  completed_at: string | null;
  attempt_log: readonly {
    attempt: number;
    attempted_at: string;
    duration_ms: number | null;
    status_code: number | null;
    error: string | null;
    response_body: string | null;
  }[];
};

const deliveryTone = { pending: 'info', succeeded: 'ok', failed: 'bad', cancelled: 'off' } as const;

/** The list page body. */
export function renderWebhooks(input: { now: Date; webhooks: readonly WebhookRow[] }): string {
  const rows = input.webhooks.map((w) =>
    `<tr data-webhook-id="${esc(w.id)}">
<th scope="row"><a href="/webhooks/${esc(w.id)}">${esc(w.url)}</a></th>
<td>${w.event_types.map((t) => `<code>${esc(t)}</code>`).join(' ')}</td>
<td>${w.description === null ? '<span class="muted">—</span>' : esc(w.description)}</td>
<td>${when(w.created_at, input.now)}</td>
<td><a href="/webhooks/${esc(w.id)}">Deliveries</a> <button type="button" class="danger" data-delete-webhook="${
      esc(w.id)
    }" aria-label="Delete webhook ${esc(w.url)}">Delete</button></td>
</tr>`
  ).join('\n');
  return `<section class="card" aria-labelledby="create-webhook-h">
<h2 id="create-webhook-h">Create a webhook</h2>
<form id="create-webhook" class="grid-form">
  <div class="field"><label for="webhook-url">URL</label><input id="webhook-url" name="url" type="url" required maxlength="2048" placeholder="https://example.com/hooks/devicetrail"></div>
  <div class="field"><label for="webhook-types">Event types (comma-separated; * for all, device.* for a family)</label><input id="webhook-types" name="event_types" required value="*"></div>
  <div class="field"><label for="webhook-description">Description</label><input id="webhook-description" name="description" maxlength="500"></div>
  <div class="field"><label for="webhook-secret">Signing secret (optional; generated when empty)</label><input id="webhook-secret" name="secret" type="password" autocomplete="off"></div>
  <button type="submit">Create webhook</button>
  <p class="error" role="alert" data-error></p>
</form>
<div id="new-webhook" class="secret-once" hidden tabindex="-1" aria-labelledby="new-webhook-h">
  <h3 id="new-webhook-h">Signing secret: copy it now, it is shown only once</h3>
  <p>Check <code>X-Devicetrail-Signature</code> on each delivery with it (docs/REALTIME.md).</p>
  <label for="new-webhook-secret">Signing secret</label>
  <input id="new-webhook-secret" readonly spellcheck="false">
  <button type="button" data-copy="new-webhook-secret">Copy secret</button>
</div>
</section>
<section id="webhooks" data-live-region aria-labelledby="webhooks-h">
<h2 id="webhooks-h">Webhooks</h2>
${
    rows === ''
      ? '<p class="muted">No webhook yet.</p>'
      : `<table><caption>${count(input.webhooks.length)} webhook(s)</caption>
<thead><tr><th scope="col">URL</th><th scope="col">Event types</th><th scope="col">Description</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
<tbody>${rows}</tbody></table>`
  }
</section>`;
}

/** One webhook's page body: its deliveries, newest first, each with every attempt. */
export function renderWebhookDeliveries(input: {
  now: Date;
  webhook: WebhookRow;
  deliveries: readonly DeliveryRow[];
  status: string;
  offset: number;
  pageSize: number;
}): string {
  const w = input.webhook;
  const items = input.deliveries.map((d) => {
    const attempts = d.attempt_log.map((a) =>
      `<tr><td>${a.attempt}</td><td>${esc(shortInstant(a.attempted_at))}</td><td>${
        a.duration_ms === null ? '—' : `${a.duration_ms} ms`
      }</td><td>${a.status_code ?? '—'}</td><td>${a.error === null ? '—' : esc(a.error)}</td><td class="summary">${
        a.response_body === null ? '—' : esc(a.response_body.slice(0, 200))
      }</td></tr>`
    ).join('');
    return `<li class="delivery">
<h3><code>${esc(d.event_type)}</code> ${badge(d.status, deliveryTone[d.status])} <span class="muted">${
      count(d.attempts)
    } attempt(s), created ${when(d.created_at, input.now)}${
      d.next_attempt_at === null ? '' : `, next attempt ${when(d.next_attempt_at, input.now)}`
    }</span></h3>
<p class="muted">Event <code>${esc(d.event_id)}</code> · delivery <code>${esc(d.id)}</code></p>
${
      attempts === ''
        ? '<p class="muted">Not attempted yet.</p>'
        : `<table><caption>Attempts of delivery ${
          esc(d.id.slice(0, 8))
        }</caption><thead><tr><th scope="col">#</th><th scope="col">At</th><th scope="col">Duration</th><th scope="col">Status code</th><th scope="col">Error</th><th scope="col">Response</th></tr></thead><tbody>${attempts}</tbody></table>`
    }
</li>`;
  }).join('\n');
  const statuses = ['', 'pending', 'succeeded', 'failed', 'cancelled'].map((s) =>
    `<option value="${s}"${s === input.status ? ' selected' : ''}>${s === '' ? 'All' : s}</option>`
  ).join('');
  const page = (offset: number) =>
    `/webhooks/${w.id}?${new URLSearchParams({
      ...(input.status === '' ? {} : { status: input.status }),
      offset: String(offset),
    })}`;
  return `<p><a href="/webhooks">All webhooks</a></p>
<dl class="identity">
<div><dt>URL</dt><dd><code>${esc(w.url)}</code></dd></div>
<div><dt>Event types</dt><dd>${w.event_types.map((t) => `<code>${esc(t)}</code>`).join(' ')}</dd></div>
<div><dt>Description</dt><dd>${w.description === null ? '—' : esc(w.description)}</dd></div>
<div><dt>Created</dt><dd>${when(w.created_at, input.now)}</dd></div>
<div><dt>Status</dt><dd>${w.deleted_at === null ? badge('Active', 'ok') : badge('Deleted', 'off')}</dd></div>
</dl>
${
    w.deleted_at === null
      ? `<p><button type="button" class="danger" data-delete-webhook="${
        esc(w.id)
      }" data-then="/webhooks">Delete this webhook</button></p>`
      : ''
  }
<form method="get" class="filters" aria-label="Filter deliveries">
  <div class="field"><label for="delivery-status">Delivery status</label><select id="delivery-status" name="status">${statuses}</select></div>
  <button type="submit">Filter</button>
</form>
<section id="deliveries" data-live-region data-poll="3000" aria-labelledby="deliveries-h">
<h2 id="deliveries-h">Deliveries</h2>
${items === '' ? '<p class="muted">No delivery yet.</p>' : `<ol class="deliveries">${items}</ol>`}
<nav class="pager" aria-label="Delivery pages">
${input.offset > 0 ? `<a href="${esc(page(Math.max(0, input.offset - input.pageSize)))}">Newer deliveries</a>` : ''}
${
    input.deliveries.length === input.pageSize
      ? `<a href="${esc(page(input.offset + input.pageSize))}" rel="next">Older deliveries</a>`
      : ''
  }
</nav>
</section>`;
}
