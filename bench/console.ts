// `npm run bench:console`: the admin console's fleet page with 10,000 devices (issue #17's
// "first paint in under 1 s"). Prints figures; asserts nothing. On a fresh database (DATABASE_URL's
// server, or the embedded PostgreSQL): 10,000 devices with ~10 valid events each (the domain's
// `decide`, appended by the event store, read model written, as bench:replay does), the real
// app on 127.0.0.1, and Debian's Chromium (playwright-core) opening the fleet page signed in:
// first paint and first contentful paint (the page is drawn on the server, so that paint holds
// the counts and the first 50 rows), the server's answer time, for the first page, a deep page,
// a filter and a search. `-- --devices 2000 --runs 5` for other sizes.
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { sql } from 'slonik';
import { createApp } from '../app/http/create-app.ts';
import { createDeps } from '../app/http/deps.ts';
import { percentile } from '../domain/replay/time.ts';
import { createEventStore } from '../infra/event-store/event-store.ts';
import { migrate } from '../infra/postgres/migrate.ts';
import { createDatabasePool } from '../infra/postgres/pool.ts';
import { adminQuery, databaseUrl, startScratchServer } from '../infra/postgres/scratch-server.ts';
import { appendHistory, generateHistory } from './generate-history.ts';

// evaluated in the page; tsconfig carries no DOM library
declare const document: { querySelectorAll: (s: string) => { length: number } };
type PaintEntry = { name: string; startTime: number };
declare const window: {
  performance: {
    getEntriesByType: (type: string) => (PaintEntry & { responseStart?: number; responseEnd?: number })[];
  };
};

const { values } = parseArgs({
  options: { devices: { type: 'string', default: '10000' }, runs: { type: 'string', default: '7' } },
});
const DEVICES = Number(values.devices);
const RUNS = Number(values.runs);
const START = '2026-01-01T00:00:00.000Z';
const DAY = 86_400_000;
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const log = (line: string) => console.log(line);
const ms = (n: number | null) => (n === null ? '—' : `${n.toFixed(0)} ms`);

async function seed(pool: Awaited<ReturnType<typeof createDatabasePool>>): Promise<number> {
  const store = createEventStore(pool);
  const t0 = performance.now();
  const batch = 16; // appends in flight at once: the pool (10) never keeps one waiting long
  for (let i = 0; i < DEVICES; i += batch) {
    const work: Promise<void>[] = [];
    for (let j = i; j < Math.min(DEVICES, i + batch); j += 1) {
      const uuid = `c${String(j).padStart(7, '0')}-0000-4000-8000-000000000000`;
      const events = generateHistory({
        uuid,
        count: 10,
        start: new Date(Date.parse(START) + (j % 1000) * 60_000).toISOString(),
        spanMs: 20 * DAY,
        seed: 7_000 + j,
        fleet: `fleet-${j % 10}`,
      });
      work.push(appendHistory(pool, store, uuid, events, 100));
    }
    await Promise.all(work);
    if (i % 800 === 0) process.stdout.write(`\r  seeding the fleet: ${Math.min(DEVICES, i + batch)}/${DEVICES}`);
  }
  process.stdout.write('\r\u001b[2K');
  return performance.now() - t0;
}

if (CHROMIUM === undefined) {
  console.error('bench:console needs Chromium at /usr/bin/chromium (apt-get install -y chromium)');
  process.exit(1);
}

const server = await startScratchServer(process.env, log);
const name = `devicetrail_bench_console_${process.pid}`;
try {
  await adminQuery(`CREATE DATABASE ${name}`, server.adminUrl);
  const url = databaseUrl(name, server.adminUrl);
  await migrate(url);
  const pool = await createDatabasePool(url, { maximumPoolSize: 10, statementTimeoutMs: 300_000 });
  const http = createServer();
  try {
    const seedMs = await seed(pool);
    log(`seeded ${DEVICES.toLocaleString('en-US')} devices (~10 events each) in ${(seedMs / 1000).toFixed(1)} s`);
    await pool.query(sql.unsafe`ANALYZE devices`);
    const deps = createDeps(pool, { logError: (m, e) => console.error(m, e) });
    const admin = await deps.adminTokens.create('bench');
    http.on('request', createApp(deps).callback());
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const signIn = await fetch(`${base}/console/session`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${admin.token}` },
    });
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const results: string[] = [];
    try {
      const context = await browser.newContext({ viewport: { width: 1360, height: 1000 } });
      const [cookieName, cookieValue] = [cookie.slice(0, cookie.indexOf('=')), cookie.slice(cookie.indexOf('=') + 1)];
      await context.addCookies([{ name: cookieName, value: cookieValue, url: base }]);
      const page = await context.newPage();
      const pages: [string, string][] = [
        ['fleet, first page', '/'],
        ['fleet, page 150 of 200', '/?page=150'],
        ['fleet, drifting only', '/?show=drifting'],
        ['fleet, search "c00042"', '/?q=c00042'],
      ];
      for (const [label, path] of pages) {
        const paints: number[] = [];
        const contentful: number[] = [];
        const answers: number[] = [];
        let rows = 0;
        for (let run = 0; run < RUNS + 1; run += 1) {
          await page.goto(`${base}${path}`, { waitUntil: 'load' });
          const timing = await page.evaluate(() => {
            const paint = window.performance.getEntriesByType('paint');
            const nav = window.performance.getEntriesByType('navigation')[0]!;
            return {
              fp: paint.find((p) => p.name === 'first-paint')?.startTime ?? null,
              fcp: paint.find((p) => p.name === 'first-contentful-paint')?.startTime ?? null,
              answer: nav.responseEnd ?? null,
              rows: document.querySelectorAll('table.devices tbody tr').length,
            };
          });
          if (run === 0) continue; // the first load warms the browser's and the server's caches
          if (timing.fp !== null) paints.push(timing.fp);
          if (timing.fcp !== null) contentful.push(timing.fcp);
          if (timing.answer !== null) answers.push(timing.answer);
          rows = timing.rows;
        }
        const p50 = percentile(contentful, 50);
        const worst = contentful.length === 0 ? null : Math.max(...contentful);
        results.push(
          `${label.padEnd(28)} ${String(rows).padStart(4)} rows  first paint ${
            ms(percentile(paints, 50)).padStart(7)
          }  ` +
            `first contentful paint p50 ${ms(p50).padStart(7)} max ${ms(worst).padStart(7)}  ` +
            `server answered ${ms(percentile(answers, 50)).padStart(7)}  ${
              worst !== null && worst < 1000 ? 'under 1 s: met' : 'MISSED'
            }`,
        );
      }
    } finally {
      await browser.close();
    }
    const load = loadavg().map((l) => l.toFixed(1)).join(' ');
    log(
      `\nconsole benchmark: the fleet page with ${
        DEVICES.toLocaleString('en-US')
      } devices, ${RUNS} loads each after one warm-up (${server.description}, node ${process.version}, Chromium, load average ${load} on ${availableParallelism()} cores)\n`,
    );
    log(results.join('\n'));
  } finally {
    await new Promise<void>((resolve) => http.close(() => resolve()));
    await pool.end();
  }
} finally {
  await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, server.adminUrl).catch(() => undefined);
  await server.stop();
}
