// Server-drawn SVG charts for the console (like the timeline page): horizontal bars for
// "which ones, how much" and columns for "how many over time". Each chart is an image with a
// title and a description that lists its values, so a screen reader gets the numbers too.
import { esc } from './html.ts';

/** One bar: its label, its value, and how the value is written. */
export type Bar = { label: string; value: number; text?: string };

const W = 640;

/** Horizontal bars, largest scale first; empty data draws a note instead. */
export function barChart(input: { id: string; title: string; bars: readonly Bar[]; empty?: string }): string {
  if (input.bars.length === 0) return `<p class="muted">${esc(input.empty ?? 'Nothing to show yet.')}</p>`;
  const rowH = 26;
  const labelW = 200;
  const valueW = 90;
  const plotW = W - labelW - valueW;
  const max = Math.max(...input.bars.map((b) => b.value), 0) || 1;
  const height = input.bars.length * rowH + 8;
  const desc = input.bars.map((b) => `${b.label}: ${b.text ?? String(b.value)}`).join('; ');
  const rows = input.bars.map((b, i) => {
    const y = 4 + i * rowH;
    const width = Math.max(b.value > 0 ? 2 : 0, (b.value / max) * plotW);
    const label = b.label.length > 28 ? `${b.label.slice(0, 27)}…` : b.label;
    const labelText = `<text x="${labelW - 8}" y="${y + 17}" text-anchor="end" class="chart-label">${
      esc(label)
    }</text>`;
    return `<g>${labelText}<rect x="${labelW}" y="${y + 4}" width="${width.toFixed(1)}" height="${
      rowH - 8
    }" class="chart-bar"/><text x="${(labelW + width + 6).toFixed(1)}" y="${y + 17}" class="chart-value">${
      esc(b.text ?? String(b.value))
    }</text></g>`;
  }).join('');
  return `<svg class="chart" id="${esc(input.id)}" viewBox="0 0 ${W} ${height}" role="img" aria-labelledby="${
    esc(input.id)
  }-title ${esc(input.id)}-desc"><title id="${esc(input.id)}-title">${esc(input.title)}</title><desc id="${
    esc(input.id)
  }-desc">${esc(desc)}</desc>${rows}</svg>`;
}

/** Columns over time: one per bucket, labelled at the first, middle and last bucket. */
export function columnChart(
  input: { id: string; title: string; buckets: readonly { from: string; label: string; value: number }[] },
): string {
  const n = input.buckets.length;
  if (n === 0) return '<p class="muted">Nothing to show yet.</p>';
  const height = 200;
  const left = 44;
  const bottom = 28;
  const plotH = height - bottom - 10;
  const plotW = W - left - 10;
  const max = Math.max(...input.buckets.map((b) => b.value), 0);
  const scale = max === 0 ? 1 : max;
  const colW = plotW / n;
  const cols = input.buckets.map((b, i) => {
    const h = (b.value / scale) * plotH;
    return `<rect x="${(left + i * colW + 1).toFixed(1)}" y="${(10 + plotH - h).toFixed(1)}" width="${
      Math.max(1, colW - 2).toFixed(1)
    }" height="${h.toFixed(1)}" class="chart-bar"><title>${esc(`${b.label}: ${b.value}`)}</title></rect>`;
  }).join('');
  const ticks = [...new Set([0, Math.floor((n - 1) / 2), n - 1])].map((i) => {
    const b = input.buckets[i]!;
    const x = left + i * colW + colW / 2;
    const anchor = i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
    return `<text x="${x.toFixed(1)}" y="${height - 8}" text-anchor="${anchor}" class="chart-label">${
      esc(b.label)
    }</text>`;
  }).join('');
  const desc = input.buckets.filter((b) => b.value > 0).map((b) => `${b.label}: ${b.value}`).join('; ') ||
    'no events in this window';
  return `<svg class="chart" id="${esc(input.id)}" viewBox="0 0 ${W} ${height}" role="img" aria-labelledby="${
    esc(input.id)
  }-title ${esc(input.id)}-desc"><title id="${esc(input.id)}-title">${esc(input.title)}</title><desc id="${
    esc(input.id)
  }-desc">${esc(desc)}</desc><line x1="${left}" y1="${10 + plotH}" x2="${W - 10}" y2="${
    10 + plotH
  }" class="chart-axis"/><text x="${left - 6}" y="16" text-anchor="end" class="chart-label">${max}</text><text x="${
    left - 6
  }" y="${10 + plotH}" text-anchor="end" class="chart-label">0</text>${cols}${ticks}</svg>`;
}

/**
 * A strip of intervals over [from, to] (drift intervals under the time slider): red where
 * the device was out of sync, with the selected instant marked.
 */
export function intervalStrip(input: {
  id: string;
  title: string;
  from: number;
  to: number;
  intervals: readonly { start: number; end: number; label: string }[];
  marker: number | null;
}): string {
  const span = Math.max(1, input.to - input.from);
  const x = (t: number) => ((Math.min(Math.max(t, input.from), input.to) - input.from) / span) * 1000;
  const rects = input.intervals.map((iv) =>
    `<rect x="${x(iv.start).toFixed(1)}" y="0" width="${
      Math.max(1, x(iv.end) - x(iv.start)).toFixed(1)
    }" height="14" class="strip-drift"><title>${esc(iv.label)}</title></rect>`
  ).join('');
  const marker = input.marker === null
    ? ''
    : `<line x1="${x(input.marker).toFixed(1)}" x2="${
      x(input.marker).toFixed(1)
    }" y1="0" y2="14" class="strip-marker"/>`;
  const desc = input.intervals.length === 0
    ? 'never out of sync'
    : `${input.intervals.length} interval(s) out of sync: ${input.intervals.map((i) => i.label).join('; ')}`;
  return `<svg class="strip" id="${
    esc(input.id)
  }" viewBox="0 0 1000 14" preserveAspectRatio="none" role="img" aria-labelledby="${esc(input.id)}-title ${
    esc(input.id)
  }-desc"><title id="${esc(input.id)}-title">${esc(input.title)}</title><desc id="${esc(input.id)}-desc">${
    esc(desc)
  }</desc><rect x="0" y="0" width="1000" height="14" class="strip-ok"/>${rects}${marker}</svg>`;
}
