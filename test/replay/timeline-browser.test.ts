// The timeline page in a real browser: Debian's Chromium, driven by playwright-core, opens
// it with no errors and no network, shows one shaded band per drift interval where the
// intervals are, and a hover tooltip; a screenshot is saved. Without a browser the test is
// skipped LOUDLY (set DEVICETRAIL_REQUIRE_BROWSER=1 in CI to make that a failure).
import { existsSync } from 'node:fs';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { chromium } from 'playwright-core';
import { driftReport } from '../../domain/replay/drift.ts';
import { replayHistory } from '../../domain/replay/service.ts';
import { renderTimeline } from '../../app/html/timeline.ts';
import { openFixtures } from '../../infra/replay/fixture-source.ts';

// evaluated in the page; tsconfig carries no DOM library
declare const getComputedStyle: (element: unknown) => { fill: string; display: string };

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
const executablePath = CANDIDATES.find((p) => existsSync(p));
const required = process.env['DEVICETRAIL_REQUIRE_BROWSER'] === '1';
const fixture = path.resolve(import.meta.dirname, '../../fixtures/drift-and-recovery.ndjson');
const TITLE = 'timeline --html opens in headless Chromium without errors and shades every drift interval';

if (executablePath === undefined) {
  const banner = `\n${'!'.repeat(78)}\n!! SKIPPED: "${TITLE}"\n!! no Chromium at ${
    CANDIDATES.join(' or ')
  }; install it with\n!!   apt-get update && apt-get install -y chromium\n${'!'.repeat(78)}\n`;
  console.warn(banner);
  test(`browser check: ${required ? 'REQUIRED but missing' : 'SKIPPED, no Chromium found'}`, (t) => {
    t.log(banner);
    if (required) t.fail(`DEVICETRAIL_REQUIRE_BROWSER=1 but no browser at ${CANDIDATES.join(', ')}`);
    else t.pass();
  });
  test.skip(TITLE, () => {});
} else {
  test(TITLE, async (t) => {
    const source = await openFixtures([fixture]);
    const uuid = (await source.devices())[0]!.uuid;
    const { device, history } = await replayHistory(source, uuid, {});
    const drift = driftReport(history);
    t.is(drift.intervals.length, 3);
    const dir = await mkdtemp(path.join(tmpdir(), 'devicetrail-timeline-'));
    const file = path.join(dir, 'timeline.html');
    await writeFile(
      file,
      renderTimeline({ device, history, drift, generatedAt: '2026-03-04T03:00:00.000Z', sourceDescription: 'fixture' }),
    );

    const browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    t.teardown(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) problems.push(`network request: ${r.url()}`);
    });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    const response = await page.goto(`file://${file}`, { waitUntil: 'load' });
    t.truthy(response);

    const bands = await page.$$eval('svg#timeline rect.drift-band', (rects) =>
      rects.map((r) => {
        const box = r.getBoundingClientRect();
        return {
          x: Number(r.getAttribute('x')),
          width: Number(r.getAttribute('width')),
          start: r.getAttribute('data-start'),
          end: r.getAttribute('data-end'),
          box: { width: box.width, height: box.height },
          fill: getComputedStyle(r).fill,
        };
      }));
    const axis = await page.$eval('svg#timeline', (svg) => {
      const data = (svg as unknown as { dataset: Record<string, string> }).dataset;
      return {
        t0: Number(data['t0']),
        t1: Number(data['t1']),
        x0: Number(data['x0']),
        x1: Number(data['x1']),
        scale: svg.getBoundingClientRect().width / 1200,
      };
    });
    const xOf = (iso: string) => axis.x0 + ((Date.parse(iso) - axis.t0) / (axis.t1 - axis.t0)) * (axis.x1 - axis.x0);
    t.is(bands.length, drift.intervals.length, 'one band per drift interval');
    drift.intervals.forEach((interval, i) => {
      const band = bands[i]!;
      t.is(band.start, interval.start);
      t.true(
        Math.abs(band.x - xOf(interval.start)) <= 1,
        `band ${i} starts at x=${band.x}, expected ${xOf(interval.start).toFixed(1)}`,
      );
      t.true(Math.abs(band.x + band.width - xOf(interval.end!)) <= 2.5, `band ${i} ends at x=${band.x + band.width}`);
      t.true(band.box.width >= 2 && band.box.height > 100, `band ${i} is visible: ${JSON.stringify(band.box)}`);
      t.regex(band.fill, /rgba\(224, 49, 49/, 'shaded red');
    });
    // the sync lane paints the same intervals solid red
    const driftSegments = await page.$$eval(
      'svg#timeline rect.seg.drift',
      (rects) => rects.map((r) => getComputedStyle(r).fill),
    );
    t.is(driftSegments.length, drift.intervals.length);
    t.true(driftSegments.every((fill) => fill === 'rgb(224, 49, 49)'));

    const first = await page.$('svg#timeline rect.drift-band');
    const box = (await first!.boundingBox())!;
    // between the first two lanes only the band is under the pointer
    await page.mouse.move(box.x + box.width / 2, box.y + 40 * axis.scale);
    const tip = await page.$eval(
      '#tip',
      (el) => ({ display: getComputedStyle(el).display, text: el.textContent ?? '' }),
    );
    t.is(tip.display, 'block');
    t.regex(tip.text, /Drift interval 1/);
    t.regex(tip.text, /apps missing: 1000, 2000/);

    const screenshot = path.join(dir, 'timeline.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    t.true((await stat(screenshot)).size > 20_000);
    t.log(`screenshot: ${screenshot} (${executablePath})`);
    t.deepEqual(problems, []);
  });
}
