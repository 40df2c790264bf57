// The provisioning keys page: create a key (shown once, with a copy button), every key with
// its usage, and revoke.
import { badge, count, esc, when } from './html.ts';

/** A key as the page shows it (the API's view; never the secret). */
export type KeyRow = {
  id: string;
  fleet_id: string;
  description: string | null;
  expires_at: string | null;
  max_devices: number | null;
  devices_count: number;
  created_at: string;
  revoked_at: string | null;
};

function status(key: KeyRow, now: Date): string {
  if (key.revoked_at !== null) return `${badge('Revoked', 'off')} ${when(key.revoked_at, now)}`;
  if (key.expires_at !== null && Date.parse(key.expires_at) <= now.getTime()) return badge('Expired', 'off');
  if (key.max_devices !== null && key.devices_count >= key.max_devices) return badge('Used up', 'warn');
  return badge('Active', 'ok');
}

function usage(key: KeyRow): string {
  if (key.max_devices === null) return `${count(key.devices_count)} device(s), no limit`;
  return `<meter min="0" max="${key.max_devices}" value="${key.devices_count}" aria-label="Devices registered with this key">${key.devices_count}/${key.max_devices}</meter> ${
    count(key.devices_count)
  } of ${count(key.max_devices)}`;
}

/** The page body. */
export function renderKeys(input: { now: Date; keys: readonly KeyRow[] }): string {
  const rows = [...input.keys].reverse().map((k) => {
    const name = `${k.fleet_id}${k.description === null ? '' : ` (${k.description})`}`;
    const open = k.revoked_at === null;
    return `<tr data-key-id="${esc(k.id)}">
<th scope="row">${esc(k.fleet_id)}<span class="uuid">${esc(k.id)}</span></th>
<td>${k.description === null ? '<span class="muted">—</span>' : esc(k.description)}</td>
<td>${when(k.created_at, input.now)}</td>
<td>${k.expires_at === null ? '<span class="muted">never</span>' : when(k.expires_at, input.now)}</td>
<td>${usage(k)}</td>
<td>${status(k, input.now)}</td>
<td>${
      open
        ? `<button type="button" class="danger" data-revoke-key="${esc(k.id)}" aria-label="Revoke key ${
          esc(name)
        }">Revoke</button>`
        : ''
    }</td>
</tr>`;
  }).join('\n');
  return `<section class="card" aria-labelledby="create-key-h">
<h2 id="create-key-h">Create a provisioning key</h2>
<form id="create-key" class="grid-form">
  <div class="field"><label for="key-fleet">Fleet</label><input id="key-fleet" name="fleet_id" required maxlength="128"></div>
  <div class="field"><label for="key-description">Description</label><input id="key-description" name="description" maxlength="500"></div>
  <div class="field"><label for="key-expires">Expires at (ISO-8601, optional)</label><input id="key-expires" name="expires_at" placeholder="2027-01-01T00:00:00Z"></div>
  <div class="field"><label for="key-max">Max devices (optional)</label><input id="key-max" name="max_devices" type="number" min="1" step="1"></div>
  <button type="submit">Create key</button>
  <p class="error" role="alert" data-error></p>
</form>
<div id="new-key" class="secret-once" hidden tabindex="-1" aria-labelledby="new-key-h">
  <h3 id="new-key-h">New key: copy it now, it is shown only once</h3>
  <p>devicetrail keeps only a hash of it. Devices register with it in <code>Authorization: Bearer …</code>.</p>
  <label for="new-key-value">Provisioning key</label>
  <input id="new-key-value" readonly spellcheck="false">
  <button type="button" data-copy="new-key-value">Copy key</button>
</div>
</section>
<section id="keys" data-live-region aria-labelledby="keys-h">
<h2 id="keys-h">Keys</h2>
${
    rows === ''
      ? '<p class="muted">No provisioning key yet.</p>'
      : `<table><caption>${count(input.keys.length)} key(s), newest first</caption>
<thead><tr><th scope="col">Fleet</th><th scope="col">Description</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Usage</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
<tbody>
${rows}
</tbody></table>`
  }
</section>`;
}
