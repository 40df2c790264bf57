// The integrity and retention page: day partitions (a chart of rows per day, then the table),
// the retention horizon, and the hash-chain checks with a button to run one.
import type { IntegrityCheck } from '../../../infra/event-store/integrity-checks.ts';
import { barChart } from './charts.ts';
import { badge, count, esc, shortInstant, when } from './html.ts';

/** The retention report (GET /api/v1/partitions). */
export type RetentionReport = {
  retention_days: number;
  recorded_horizon: string | null;
  target_horizon: string | null;
  partitions: readonly { name: string; day: string; rows: number; bytes: number; due: boolean }[];
  totals: { partitions: number; rows: number; bytes: number; due: number };
};

const size = (bytes: number) =>
  bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} kB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;

const checkTone = { running: 'info', passed: 'ok', failed: 'bad', error: 'warn' } as const;

function checkSummary(check: IntegrityCheck | undefined, now: Date): string {
  if (check === undefined) return '<p>No check has been run from the console or the API yet.</p>';
  const breaks = (check.breaks ?? []).slice(0, 50).map((b) =>
    `<tr><td>${esc(b.aggregate_type)}</td><td><code>${esc(b.aggregate_id)}</code></td><td>${b.version ?? '—'}</td><td>${
      esc(b.reason)
    }</td><td>${esc(b.message)}</td></tr>`
  ).join('');
  return `<p>Last check: ${badge(check.status, checkTone[check.status])} started ${when(check.started_at, now)}${
    check.finished_at === null ? '' : `, finished ${when(check.finished_at, now)}`
  }${
    check.aggregates === null
      ? ''
      : ` · ${count(check.aggregates)} chain(s), ${count(check.events ?? 0)} event(s) checked`
  }.</p>
${check.error === null ? '' : `<p class="error">${esc(check.error)}</p>`}
${
    breaks === ''
      ? ''
      : `<table><caption>First broken link of each chain</caption><thead><tr><th scope="col">Aggregate type</th><th scope="col">Aggregate</th><th scope="col">Version</th><th scope="col">Reason</th><th scope="col">What</th></tr></thead><tbody>${breaks}</tbody></table>`
  }`;
}

/** The page body. */
export function renderIntegrity(
  input: { now: Date; report: RetentionReport; checks: readonly IntegrityCheck[] },
): string {
  const r = input.report;
  const running = input.checks[0]?.status === 'running';
  const rows = [...r.partitions].reverse().map((p) =>
    `<tr><th scope="row">${esc(p.day)}</th><td><code>${esc(p.name)}</code></td><td>${count(p.rows)}</td><td>${
      size(p.bytes)
    }</td><td>${p.due ? badge('due for retention', 'warn') : ''}</td></tr>`
  ).join('');
  const history = input.checks.slice(1).map((c) =>
    `<li>${badge(c.status, checkTone[c.status])} ${esc(shortInstant(c.started_at))}${
      c.breaks === null || c.breaks.length === 0 ? '' : ` · ${c.breaks.length} broken chain(s)`
    }</li>`
  ).join('');
  return `<section id="integrity-checks" data-live-region${
    running ? ' data-poll="1000"' : ''
  } aria-labelledby="verify-h" class="card">
<h2 id="verify-h">Hash chains</h2>
<p class="muted">Every event is hash-chained to the previous event of its aggregate; a check recomputes every chain
and reports each one's first broken link (as <code>npm run replay -- verify</code>).</p>
${checkSummary(input.checks[0], input.now)}
<button type="button" id="run-verify"${running ? ' disabled' : ''}>${
    running ? 'Verify running…' : 'Run verify'
  }</button>
<p class="error" role="alert" data-error></p>
${history === '' ? '' : `<h3>Earlier checks</h3><ul>${history}</ul>`}
</section>
<section id="retention" aria-labelledby="retention-h">
<h2 id="retention-h">Retention and partitions</h2>
<dl class="identity">
<div><dt>Retention</dt><dd>${r.retention_days === 0 ? 'keeps everything' : `${r.retention_days} days`}</dd></div>
<div><dt>Horizon reached</dt><dd>${
    r.recorded_horizon === null ? 'nothing dropped yet' : esc(shortInstant(r.recorded_horizon))
  }</dd></div>
<div><dt>Horizon today</dt><dd>${r.target_horizon === null ? '—' : esc(shortInstant(r.target_horizon))}</dd></div>
<div><dt>Partitions</dt><dd>${count(r.totals.partitions)} (${count(r.totals.due)} due)</dd></div>
<div><dt>Events</dt><dd>${count(r.totals.rows)}</dd></div>
<div><dt>Size</dt><dd>${size(r.totals.bytes)}</dd></div>
</dl>
${
    barChart({
      id: 'partition-rows',
      title: 'Events per day partition (newest first)',
      bars: [...r.partitions].reverse().slice(0, 30).map((p) => ({ label: p.day, value: p.rows, text: count(p.rows) })),
      empty: 'No partition yet.',
    })
  }
${
    rows === ''
      ? ''
      : `<table><caption>Day partitions, newest first</caption><thead><tr><th scope="col">Day</th><th scope="col">Partition</th><th scope="col">Events</th><th scope="col">Size</th><th scope="col">Retention</th></tr></thead><tbody>${rows}</tbody></table>`
  }
</section>`;
}
