// Durations for people: "24h" in, "2h 13m 5s" out, and percentiles of a sample.

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "90s", "15m", "24h", "7d", "2w" or "1h30m" into ms; null when malformed or zero. */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (!/^(\d+(ms|s|m|h|d|w))+$/.test(trimmed)) return null;
  let total = 0;
  for (const match of trimmed.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(match[1]) * UNITS[match[2]!]!;
  return total > 0 && Number.isSafeInteger(total) ? total : null;
}

/** "3d 4h", "2h 13m", "5m 2s", "1.234s", "12ms": the two largest units that matter. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const sign = ms < 0 ? '-' : '';
  const abs = Math.abs(ms);
  if (abs < 1_000) return `${sign}${Math.round(abs)}ms`;
  if (abs < 60_000) return `${sign}${(abs / 1_000).toFixed(abs < 10_000 ? 3 : 1).replace(/\.?0+$/, '')}s`;
  const parts: string[] = [];
  let rest = Math.floor(abs / 1_000);
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
  }
  return sign + parts.slice(0, 2).filter((p) => !/^0/.test(p)).join(' ');
}

/** Nearest-rank percentile (p in 0..100) of a sample; null for an empty one. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}
