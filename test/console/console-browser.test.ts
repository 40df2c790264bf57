// The admin console in a real browser (issue #17's acceptance list): Debian's Chromium,
// driven by playwright-core, every element found by its role and accessible name. Sign in;
// the fleet shows a seeded device; a report made over the API shows on the open fleet and
// device pages within 2 s without a reload; disable with a reason; a target edit; a second
// browser gets the conflict view; the time slider shows what GET …/state?at= answers; a
// provisioning key is created and revoked; signing out makes the cookie useless; axe-core
// finds no serious or critical violation on any page. A screenshot of each page is saved in
// test-results/console/. Without a browser the suite is skipped LOUDLY (set
// DEVICETRAIL_REQUIRE_BROWSER=1, as CI does, to make that a failure).
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { startConsoleApp } from './console-app.ts';

// evaluated in the page; tsconfig carries no DOM library
declare const window: Record<string, unknown>;
declare const document: { querySelector: (s: string) => { textContent: string | null } | null; cookie: string };
declare const localStorage: {
  length: number;
  key: (i: number) => string | null;
  getItem: (k: string) => string | null;
};
declare const sessionStorage: typeof localStorage;
declare const axe: { run: (context: unknown, options: unknown) => Promise<AxeResults> };
type AxeResults = { violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[] };

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
const executablePath = CANDIDATES.find((p) => existsSync(p));
const required = process.env['DEVICETRAIL_REQUIRE_BROWSER'] === '1';
/** Where the screenshots go (gitignored; CI lists it). */
export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../../test-results/console');
const TITLE = 'the admin console in Chromium';

type App = Awaited<ReturnType<typeof startConsoleApp>>;
let app: App;
let browser: Browser;
const problems: string[] = [];
let device: { uuid: string; deviceKey: string };
const DEVICE_NAME = 'greenhouse-pi-07';

const target = (version: string) => ({
  apps: {
    '1000': { appId: 1000, appName: 'sensor-hub', services: [{ serviceName: 'main', image: `sensor-hub:${version}` }] },
  },
  config: { SAMPLE_RATE: '10s' },
});

/** A context whose pages report console errors, page errors, failed and off-site requests. */
async function newContext(name: string): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
  context.on('page', (page) => watch(page, name));
  return context;
}

function watch(page: Page, name: string): void {
  page.on('console', (m) => {
    // the refusals the tests provoke on purpose (401, 400, 412) are logged by the browser too
    if (
      m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())
    ) {
      problems.push(`${name} console error: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => problems.push(`${name} page error: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith(app.baseUrl) && !r.url().startsWith('data:')) {
      problems.push(`${name} off-site request: ${r.url()}`);
    }
  });
}

/** Signs in through the sign-in page, as a person would. */
async function signIn(context: BrowserContext, next = '/'): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${app.baseUrl}${next}`);
  await page.waitForURL(/\/sign-in\?next=/);
  await page.getByLabel('Admin token').fill(app.admin.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL((url) => url.pathname === new URL(next, app.baseUrl).pathname);
  return page;
}

/** axe-core in the page (evaluated over the DevTools protocol, so the page's CSP stays as it is). */
async function axeScan(page: Page, name: string): Promise<string[]> {
  const source = await readFile(path.resolve(import.meta.dirname, '../../node_modules/axe-core/axe.min.js'), 'utf8');
  await page.evaluate(source);
  const results = await page.evaluate(() =>
    axe.run(document, {
      resultTypes: ['violations'],
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'best-practice'] },
    })
  );
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) =>
      `${name}: ${v.impact} ${v.id} (${v.help}) at ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`
    );
}

async function screenshot(page: Page, name: string): Promise<void> {
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if ((await stat(file)).size < 10_000) problems.push(`screenshot ${name} looks empty`);
}

async function api(method: string, urlPath: string, body?: unknown, token = app.admin.token) {
  return app.request(urlPath, { method, token, ...(body === undefined ? {} : { body }) });
}

if (executablePath === undefined) {
  const banner = `\n${'!'.repeat(78)}\n!! SKIPPED: "${TITLE}"\n!! no Chromium at ${
    CANDIDATES.join(' or ')
  }; install it with\n!!   apt-get update && apt-get install -y chromium\n${'!'.repeat(78)}\n`;
  console.warn(banner);
  test(`console browser check: ${required ? 'REQUIRED but missing' : 'SKIPPED, no Chromium found'}`, (t) => {
    t.log(banner);
    if (required) t.fail(`DEVICETRAIL_REQUIRE_BROWSER=1 but no browser at ${CANDIDATES.join(', ')}`);
    else t.pass();
  });
} else {
  test.before(async () => {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    app = await startConsoleApp();
    device = await app.registerDevice({ name: DEVICE_NAME, fleet: 'greenhouses' });
    for (let i = 0; i < 3; i += 1) await app.registerDevice({ name: `barn-sensor-${i}`, fleet: 'barns' });
    const set = await api('POST', `/api/v1/devices/${device.uuid}/target-state`, target('1.0'));
    if (set.status !== 200) throw new Error(`target: ${set.status} ${set.text}`);
    browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });

  test.after.always(async () => {
    await browser?.close();
    await app?.close();
  });

  test.serial('sign in: the token leaves no trace in the URL, the page, storage or script-readable cookies', async (t) => {
    const context = await newContext('sign-in');
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.goto(`${app.baseUrl}/`);
    t.regex(page.url(), /\/sign-in\?next=%2F$/);
    t.deepEqual(await axeScan(page, 'sign-in'), []);
    await screenshot(page, 'sign-in');
    // a wrong token is refused with the API's message
    await page.getByLabel('Admin token').fill('dta_wrong-token-000000000000000000000');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText(/Sign-in refused: unknown or revoked credentials/).waitFor();
    await page.getByLabel('Admin token').fill(app.admin.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${app.baseUrl}/`);
    await page.getByRole('heading', { name: 'Fleet', level: 1 }).waitFor();
    t.false(page.url().includes(app.admin.token));
    t.false((await page.content()).includes(app.admin.token));
    const stored = await page.evaluate(() => {
      const all: string[] = [document.cookie];
      for (const store of [localStorage, sessionStorage]) {
        for (let i = 0; i < store.length; i += 1) all.push(`${store.key(i)}=${store.getItem(store.key(i)!)}`);
      }
      return all.join('\n');
    });
    t.false(stored.includes(app.admin.token), 'not in storage');
    t.false(stored.includes('dts_'), 'the session cookie is HttpOnly: scripts cannot read it');
    const [cookie] = await context.cookies();
    t.like(cookie, { name: 'devicetrail_session', httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    t.true(cookie!.expires > Date.now() / 1000 + 7 * 3600, 'expires in about eight hours');
  });

  test.serial('the fleet shows the seeded device, with counts, filters and search', async (t) => {
    const context = await newContext('fleet');
    t.teardown(() => context.close());
    const page = await signIn(context);
    const row = page.getByRole('row', { name: new RegExp(DEVICE_NAME) });
    await row.waitFor();
    t.regex(await row.innerText(), /greenhouses[\s\S]*raspberry-pi-4[\s\S]*Enabled[\s\S]*Drifting/);
    t.true(await row.getByRole('link', { name: DEVICE_NAME }).isVisible());
    t.regex(await page.getByRole('region', { name: 'Fleet counts' }).innerText(), /4\s+devices[\s\S]*1\s+drifting/);
    await page.getByRole('searchbox', { name: 'Search' }).fill('barn-sensor-1');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/q=barn-sensor-1/);
    t.is(await page.getByRole('row', { name: /barn-sensor/ }).count(), 1);
    await page.getByRole('searchbox', { name: 'Search' }).fill(device.uuid.slice(0, 8));
    await page.getByRole('combobox', { name: 'Show' }).selectOption('drifting');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/show=drifting/);
    await page.getByRole('row', { name: new RegExp(DEVICE_NAME) }).waitFor();
    await page.goto(`${app.baseUrl}/`);
    t.deepEqual(await axeScan(page, 'fleet'), []);
    await screenshot(page, 'fleet');
  });

  test.serial('a report over the API shows on the open fleet and device pages within 2 s, without a reload', async (t) => {
    const context = await newContext('live');
    t.teardown(() => context.close());
    const fleet = await signIn(context);
    const page = await context.newPage();
    await page.goto(`${app.baseUrl}/devices/${device.uuid}`);
    await page.getByRole('heading', { name: 'State now' }).waitFor();
    await fleet.getByRole('row', { name: new RegExp(DEVICE_NAME) }).getByText('Drifting').waitFor();
    for (const p of [fleet, page]) {
      await p.getByText('Live: this page updates as events arrive.').waitFor();
      await p.evaluate(() => (window['notReloaded'] = true));
    }
    const reported = await app.request('/api/v1/device/state', {
      method: 'PATCH',
      token: device.deviceKey,
      body: {
        [device.uuid]: {
          apps: { '1000': { services: { main: { image: 'sensor-hub:1.0', status: 'running' } } } },
          ip_address: '10.20.30.40',
        },
      },
    });
    t.is(reported.status, 200, reported.text);
    const started = Date.now();
    await Promise.all([
      fleet.getByRole('row', { name: new RegExp(DEVICE_NAME) }).getByText('In sync').waitFor({ timeout: 2000 }),
      page.getByRole('region', { name: 'State now' }).getByText('"10.20.30.40"').waitFor({ timeout: 2000 }),
      page.getByRole('region', { name: 'Identity' }).getByText('10.20.30.40').waitFor({ timeout: 2000 }),
    ]);
    t.log(`the report showed on both pages ${Date.now() - started} ms after the API answered`);
    for (const p of [fleet, page]) t.true(await p.evaluate(() => window['notReloaded'] === true), 'no reload');
    t.regex(await fleet.getByRole('region', { name: 'Fleet counts' }).innerText(), /0\s+drifting/);
  });

  test.serial('disable with a reason writes device.offline with that reason; enable writes device.online', async (t) => {
    const context = await newContext('toggle');
    t.teardown(() => context.close());
    const page = await signIn(context, `/devices/${device.uuid}`);
    await page.getByLabel('Reason').fill('greenhouse glass repair');
    await page.getByRole('button', { name: 'Disable device' }).click();
    await page.getByText(/Device disabled: greenhouse glass repair \(device\.offline\)/).waitFor();
    const offline = await api('GET', `/api/v1/devices/${device.uuid}/events?type=device.offline`);
    t.is(offline.json.events.length, 1);
    t.is(offline.json.events[0].data.reason, 'greenhouse glass repair');
    t.deepEqual(offline.json.events[0].metadata.actor, { type: 'admin', id: app.admin.id });
    t.is(offline.json.events[0].metadata.endpoint, '/api/v1/devices/:uuid/active');
    await page.getByRole('button', { name: 'Enable device' }).waitFor();
    t.true(await page.getByRole('region', { name: 'Identity' }).getByText('Disabled').isVisible());
    await page.getByRole('button', { name: 'Enable device' }).click();
    await page.getByText(/Device enabled \(device\.online\)/).waitFor();
    t.is((await api('GET', `/api/v1/devices/${device.uuid}`)).json.is_active, true);
  });

  test.serial('a target edit writes target_state.updated; invalid JSON is shown inline and sends nothing', async (t) => {
    const context = await newContext('target');
    t.teardown(() => context.close());
    const page = await signIn(context, `/devices/${device.uuid}`);
    const editor = page.getByLabel(/Target state JSON/);
    const before = await app.eventCount();
    await editor.fill('{"apps": {');
    await page.getByRole('button', { name: 'Save target' }).click();
    await page.locator('#target-error').getByText(/Not valid JSON/).waitFor();
    t.is(await editor.getAttribute('aria-invalid'), 'true');
    // the API's own refusal is shown with its message
    await editor.fill(JSON.stringify({ apps: { '1000': { appName: 42 } } }));
    await page.getByRole('button', { name: 'Save target' }).click();
    await page.locator('#target-error').getByText(/body\.apps\.1000\.appName.*\(400 invalid_request\)/).waitFor();
    t.is(await app.eventCount(), before, 'nothing written');
    await editor.fill(JSON.stringify(target('2.0'), null, 2));
    await page.getByRole('button', { name: 'Save target' }).click();
    await page.getByText('Target saved as version 2.').waitFor();
    const updated = await api('GET', `/api/v1/devices/${device.uuid}/events?type=target_state.updated`);
    const last = updated.json.events[updated.json.events.length - 1];
    t.is(last.data.version, 2);
    t.is(last.data.new_state.apps['1000'].services[0].image, 'sensor-hub:2.0');
    await page.getByRole('region', { name: 'State now' }).getByText('Target (version 2)').waitFor({ timeout: 2000 });
    t.deepEqual(await axeScan(page, 'device'), []);
    await screenshot(page, 'device');
  });

  test.serial('a second browser editing the same target gets the conflict view with both versions', async (t) => {
    const first = await newContext('editor-1');
    const second = await newContext('editor-2');
    t.teardown(() => Promise.all([first.close(), second.close()]));
    const a = await signIn(first, `/devices/${device.uuid}`);
    const b = await signIn(second, `/devices/${device.uuid}`);
    const version = (await api('GET', `/api/v1/devices/${device.uuid}`)).json.target.version as number;
    await a.getByLabel(/Target state JSON/).fill(JSON.stringify(target('3.0-alice'), null, 2));
    await b.getByLabel(/Target state JSON/).fill(JSON.stringify(target('3.0-bob'), null, 2));
    await a.getByRole('button', { name: 'Save target' }).click();
    await a.getByText(`Target saved as version ${version + 1}.`).waitFor();
    await b.getByRole('button', { name: 'Save target' }).click();
    const conflict = b.getByRole('heading', {
      name: `Conflict: the target changed to version ${version + 1} while you were editing version ${version}`,
    });
    await conflict.waitFor();
    const mine = b.getByRole('figure', { name: /Your version/ });
    const theirs = b.getByRole('figure', { name: `Current version ${version + 1}` });
    t.regex(await mine.innerText(), /sensor-hub:3\.0-bob/);
    t.regex(await theirs.innerText(), /sensor-hub:3\.0-alice/);
    t.is(await theirs.locator('mark').count() > 0, true, 'the differing lines are marked');
    const now = (await api('GET', `/api/v1/devices/${device.uuid}`)).json.target;
    t.is(now.version, version + 1);
    t.is(now.apps['1000'].services[0].image, 'sensor-hub:3.0-alice', 'the first edit was not overwritten');
    t.deepEqual(await axeScan(b, 'device-conflict'), []);
    await screenshot(b, 'device-conflict');
    // keeping theirs loads their version to edit; saving then succeeds on top of it
    await b.getByRole('button', { name: `Discard mine and edit version ${version + 1}` }).click();
    t.regex(await b.getByLabel(/Target state JSON/).inputValue(), /3\.0-alice/);
    await b.getByRole('button', { name: 'Save target' }).click();
    await b.getByText(`Target saved as version ${version + 2}.`).waitFor();
  });

  test.serial('the time slider shows the state at a past instant exactly as GET /api/v1/devices/:uuid/state?at= does', async (t) => {
    const context = await newContext('slider');
    t.teardown(() => context.close());
    const page = await signIn(context, `/devices/${device.uuid}`);
    const compare = async (label: string) => {
      const region = page.locator('#device-state');
      const at = await region.getAttribute('data-at');
      t.truthy(at);
      t.not(at, 'now', label);
      const answer = await api('GET', `/api/v1/devices/${device.uuid}/state?at=${encodeURIComponent(at!)}`);
      t.is(answer.status, 200);
      const shown = {
        target: JSON.parse((await region.locator('pre[data-json="target"]').textContent()) ?? ''),
        current: JSON.parse((await region.locator('pre[data-json="current"]').textContent()) ?? ''),
      };
      t.deepEqual(shown, { target: answer.json.target, current: answer.json.current }, label);
      t.true(
        await page.getByRole('heading', { name: `State at ${at!.slice(0, 10)} ${at!.slice(11, 19)} UTC` }).isVisible(),
      );
      return answer.json;
    };
    // the keyboard: Home goes to the device's registration, arrows move along its life
    const slider = page.getByRole('slider', { name: 'Instant' });
    await slider.focus();
    await page.keyboard.press('Home');
    await page.locator('#device-state:not([data-at="now"])').waitFor();
    const atRegistration = await compare('at registration');
    t.is(atRegistration.target, null, 'no target yet when it registered');
    for (let i = 0; i < 500; i += 1) await page.keyboard.press('ArrowRight');
    await page.waitForFunction(
      (old) => document.querySelector('#device-state h2')?.textContent !== old,
      await page.locator('#device-state h2').textContent(),
    );
    await page.waitForTimeout(400);
    await compare('half way through its life');
    // an exact instant: between target version 1 and the first report, the device drifted
    const events = (await api('GET', `/api/v1/devices/${device.uuid}/events`)).json.events as {
      event_type: string;
      timestamp: string;
    }[];
    const v1 = events.find((e) => e.event_type === 'target_state.updated')!;
    const between = new Date(Date.parse(v1.timestamp) + 1).toISOString();
    await page.getByLabel('Go to instant (ISO-8601)').fill(between);
    await page.getByRole('button', { name: 'Show', exact: true }).click();
    await page.locator(`#device-state[data-at="${between}"]`).waitFor();
    const drifted = await compare('after target version 1');
    t.is(drifted.target.version, 1);
    t.false(drifted.in_sync);
    t.true(await page.getByRole('list', { name: 'Differences between target and current' }).isVisible());
    t.regex(page.url(), new RegExp(`at=${encodeURIComponent(between)}`), 'the instant is kept in the address');
    await screenshot(page, 'device-past-instant');
    // the README's picture: the slider, the drift strip and the state at that instant
    const top = (await page.getByRole('heading', { name: 'Time travel' }).boundingBox())!;
    await page.screenshot({
      path: path.join(SCREENSHOT_DIR, 'device-time-travel.png'),
      fullPage: true,
      clip: {
        x: 0,
        y: top.y + (await page.evaluate(() => window['scrollY'] as number)) - 16,
        width: 1360,
        height: 760,
      },
    });
    // previous/next event step through the log
    await page.getByRole('button', { name: 'Next event' }).click();
    await page.waitForFunction(
      (old) => document.querySelector('#device-state h2')?.textContent !== old,
      `State at ${between}`,
    );
    await page.waitForTimeout(300);
    await compare('the next event');
    await page.getByRole('button', { name: 'Now' }).click();
    await page.locator('#device-state[data-at="now"]').waitFor();
  });

  test.serial('a provisioning key is created (shown once, with a copy button) and revoked', async (t) => {
    const context = await newContext('keys');
    t.teardown(() => context.close());
    const page = await signIn(context, '/provisioning-keys');
    await page.getByLabel('Fleet').fill('orchards');
    await page.getByLabel('Description').fill('spring rollout');
    await page.getByLabel('Max devices (optional)').fill('25');
    await page.getByRole('button', { name: 'Create key' }).click();
    const key = page.getByRole('textbox', { name: 'Provisioning key' });
    await key.waitFor();
    const secret = await key.inputValue();
    t.regex(secret, /^dtp_/);
    await page.getByRole('button', { name: 'Copy key' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    const row = page.getByRole('row', { name: /orchards/ });
    await row.getByText('Active').waitFor();
    t.regex(await row.innerText(), /spring rollout[\s\S]*0 of 25/);
    // the key works, and the page shows it used
    const registered = await app.request('/api/v1/device/register', {
      method: 'POST',
      token: secret,
      body: {
        uuid: crypto.randomUUID(),
        deviceName: 'orchard-1',
        deviceType: 'rpi',
        deviceApiKey: `orchard-${crypto.randomUUID()}`,
      },
    });
    t.is(registered.status, 201);
    await row.getByText('1 of 25').waitFor({ timeout: 3000 });
    t.deepEqual(await axeScan(page, 'provisioning-keys'), []);
    await screenshot(page, 'provisioning-keys');
    await row.getByRole('button', { name: 'Revoke key orchards (spring rollout)' }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke provisioning key' });
    await dialog.getByLabel('Reason (optional)').fill('rollout finished');
    await dialog.getByRole('button', { name: 'Revoke key' }).click();
    await page.getByRole('row', { name: /orchards/ }).getByText('Revoked').waitFor();
    const listed = (await api('GET', '/api/v1/provisioning-keys')).json.provisioning_keys.find((
      k: { fleet_id: string },
    ) => k.fleet_id === 'orchards');
    t.truthy(listed.revoked_at);
    const refused = await app.request('/api/v1/device/register', {
      method: 'POST',
      token: secret,
      body: {
        uuid: crypto.randomUUID(),
        deviceName: 'orchard-2',
        deviceType: 'rpi',
        deviceApiKey: `orchard-${crypto.randomUUID()}`,
      },
    });
    t.is(refused.status, 403);
  });

  test.serial('webhooks, listeners, live events, analytics and integrity pages work and pass axe', async (t) => {
    const context = await newContext('pages');
    t.teardown(() => context.close());
    const page = await signIn(context, '/webhooks');
    // a public address literal: the webhook address policy refuses private ones, and no
    // delivery is attempted here (this app runs no delivery worker)
    await page.getByLabel('URL').fill('https://1.1.1.1/devicetrail-hook');
    await page.getByLabel(/Event types/).fill('device.*');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    await page.locator('#new-webhook:not([hidden]), #create-webhook [data-error]:not(:empty)').first().waitFor();
    t.is(await page.locator('#create-webhook [data-error]').innerText(), '', 'the webhook was created');
    t.regex(await page.getByRole('textbox', { name: 'Signing secret', exact: true }).inputValue(), /.{16,}/);
    await page.getByRole('link', { name: 'https://1.1.1.1/devicetrail-hook' }).waitFor();
    t.deepEqual(await axeScan(page, 'webhooks'), []);
    await screenshot(page, 'webhooks');
    // a device event makes a delivery, which fails (nothing listens) and shows its attempts
    await api('PATCH', `/api/v1/devices/${device.uuid}/active`, { is_active: false, reason: 'webhook test' });
    await page.getByRole('link', { name: 'https://1.1.1.1/devicetrail-hook' }).click();
    await page.getByRole('heading', { name: 'Deliveries' }).waitFor();
    t.deepEqual(await axeScan(page, 'webhook-deliveries'), []);
    await screenshot(page, 'webhook-deliveries');
    await page.getByRole('button', { name: 'Delete this webhook' }).click();
    await page.getByRole('dialog', { name: 'Delete webhook' }).getByRole('button', { name: 'Delete webhook' }).click();
    await page.waitForURL(`${app.baseUrl}/webhooks`);
    await page.getByText('No webhook yet.').waitFor();

    await page.goto(`${app.baseUrl}/listeners`);
    await page.getByRole('heading', { name: 'Dead letters', exact: true }).waitFor();
    t.deepEqual(await axeScan(page, 'listeners'), []);
    await screenshot(page, 'listeners');

    await page.goto(`${app.baseUrl}/events`);
    await page.getByText(/^Live: 0 event/).waitFor();
    await api('PATCH', `/api/v1/devices/${device.uuid}/active`, { is_active: true, reason: 'live page' });
    await page.getByRole('cell', { name: 'device.online' }).first().waitFor({ timeout: 2000 });
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByText(/^Paused after 1 event/).waitFor();
    await api('PATCH', `/api/v1/devices/${device.uuid}/active`, { is_active: false, reason: 'while paused' });
    t.is(await page.getByRole('cell', { name: 'device.offline' }).count(), 0, 'paused: nothing added');
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('cell', { name: 'device.offline' }).first().waitFor({ timeout: 2000 });
    t.is(await page.getByRole('button', { name: 'Pause' }).getAttribute('aria-pressed'), 'false');
    await page.getByLabel('Event types (comma-separated)').fill('not an event type!');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.locator('#live-filter [data-error]').getByText(/query\.type: event types look like/).waitFor();
    t.deepEqual(await axeScan(page, 'live-events'), []);
    await screenshot(page, 'live-events');
    await api('PATCH', `/api/v1/devices/${device.uuid}/active`, { is_active: true, reason: 'done' });

    await page.goto(`${app.baseUrl}/analytics`);
    await page.getByRole('img', { name: 'Target changes per interval' }).waitFor();
    await page.getByRole('img', { name: 'Time from a target update to the device running it (percentiles)' }).waitFor();
    t.deepEqual(await axeScan(page, 'analytics'), []);
    await screenshot(page, 'analytics');

    await page.goto(`${app.baseUrl}/integrity`);
    await page.getByRole('button', { name: 'Run verify' }).click();
    await page.getByText(/Last check: passed/).waitFor({ timeout: 10_000 });
    t.deepEqual(await axeScan(page, 'integrity'), []);
    await screenshot(page, 'integrity');
  });

  test.serial('signing out makes the session cookie useless', async (t) => {
    const context = await newContext('sign-out');
    t.teardown(() => context.close());
    const page = await signIn(context);
    const [cookie] = await context.cookies();
    const header = `${cookie!.name}=${cookie!.value}`;
    t.is((await app.request('/api/v1/devices', { cookie: header })).status, 200);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    t.deepEqual(await context.cookies(), [], 'the browser dropped it');
    t.is((await app.request('/api/v1/devices', { cookie: header })).status, 401, 'a copy kept elsewhere is refused');
    await page.goto(`${app.baseUrl}/`);
    t.regex(page.url(), /\/sign-in/);
  });

  test.serial('no page logged an error, broke its CSP or asked anything of another site', (t) => {
    t.deepEqual(problems, []);
    t.log(`screenshots: ${SCREENSHOT_DIR}`);
  });
}
