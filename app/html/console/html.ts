// Small pieces every console page is made of: escaped text, instants, durations, badges, and
// JSON printed exactly as JSON.stringify(value, null, 2) prints it, with chosen parts marked.
import { formatDuration } from '../../../domain/replay/time.ts';
import { escapeHtml } from '../timeline.ts';

/** Escapes text for HTML content and attribute values (the project's one escaping function). */
export const esc = escapeHtml;

/** HTML as a string, from a template whose interpolations are already escaped or are HTML. */
export const html = (strings: TemplateStringsArray, ...parts: (string | number)[]): string =>
  strings.reduce((out, s, i) => out + s + (i < parts.length ? String(parts[i]) : ''), '');

/** `2026-11-27T10:00:00.000Z` → `2026-11-27 10:00:00 UTC`. */
export const shortInstant = (iso: string): string => `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;

/** An instant as a `<time>` element with how long ago it was. */
export function when(iso: string | null, now: Date, emptyText = 'never'): string {
  if (iso === null) return `<span class="muted">${esc(emptyText)}</span>`;
  const ago = now.getTime() - Date.parse(iso);
  const relative = ago >= 0 ? `${formatDuration(ago)} ago` : `in ${formatDuration(-ago)}`;
  return `<time datetime="${esc(iso)}" title="${esc(shortInstant(iso))}">${esc(relative)}</time>`;
}

/** A duration in words (`1h 5m`). */
export const duration = (ms: number | null): string => (ms === null ? '—' : esc(formatDuration(ms)));

/** A status badge; `tone` picks the colour, the text says it (colour is never the only cue). */
export const badge = (text: string, tone: 'ok' | 'bad' | 'warn' | 'off' | 'info'): string =>
  `<span class="badge ${tone}">${esc(text)}</span>`;

/** A number with thousands separators. */
export const count = (n: number): string => n.toLocaleString('en-US');

/**
 * `value` printed exactly as JSON.stringify(value, null, 2) prints it, escaped for HTML, with
 * the subtrees at `marked` paths (e.g. ['apps', '1000']) wrapped in <mark>, so the text of
 * the element parses back to the value and the differences stand out.
 */
export function markedJson(value: unknown, marked: readonly (readonly string[])[] = []): string {
  const keys = new Set(marked.map((path) => JSON.stringify(path)));
  const print = (v: unknown, path: string[], indent: string): string => {
    const inner = indent + '  ';
    let text: string;
    if (Array.isArray(v)) {
      text = v.length === 0
        ? '[]'
        : `[\n${v.map((item, i) => inner + print(item ?? null, [...path, String(i)], inner)).join(',\n')}\n${indent}]`;
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v).filter(([, x]) => x !== undefined && typeof x !== 'function');
      text = entries.length === 0
        ? '{}'
        : `{\n${
          entries.map(([k, x]) => `${inner}${esc(JSON.stringify(k))}: ${print(x, [...path, k], inner)}`).join(',\n')
        }\n${indent}}`;
    } else text = esc(JSON.stringify(v) ?? 'null');
    return path.length > 0 && keys.has(JSON.stringify(path)) ? `<mark>${text}</mark>` : text;
  };
  return print(value, [], '');
}
