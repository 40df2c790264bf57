// One-line descriptions of drift, apps and events, shared by the CLI's text output and the
// timeline's hover details. Fields the code does not know are shown as compact JSON.

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Compact JSON, cut at `max` characters. */
export function compact(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** "2026-03-02 08:15:00Z" (milliseconds shown only when not zero). */
export function shortTime(iso: string): string {
  return iso.replace('T', ' ').replace(/\.000Z$/, 'Z');
}

/** What a drift's non-empty fields say, one phrase each. */
export function describeDrift(detail: Record<string, unknown>): string[] {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(detail)) {
    if (key === 'services' && Array.isArray(value)) {
      const items = value.map((s) => {
        if (!isObject(s)) return compact(s, 60);
        const where = `${String(s['app_id'] ?? '?')}/${String(s['service_name'] ?? '?')}`;
        const problem = String(s['problem'] ?? 'differs').replace(/_/g, ' ');
        const detailText = s['expected'] !== undefined || s['actual'] !== undefined
          ? ` (${s['expected'] === undefined ? '' : `want ${String(s['expected'])}`}${
            s['expected'] !== undefined && s['actual'] !== undefined ? ', ' : ''
          }${s['actual'] === undefined ? '' : `has ${String(s['actual'])}`})`
          : '';
        return `${where} ${problem}${detailText}`;
      });
      lines.push(`services: ${items.join('; ')}`);
    } else if (Array.isArray(value)) {
      lines.push(
        `${key.replace(/_/g, ' ')}: ${value.map((v) => (typeof v === 'string' ? v : compact(v, 40))).join(', ')}`,
      );
    } else {
      lines.push(`${key.replace(/_/g, ' ')}: ${compact(value, 80)}`);
    }
  }
  return lines;
}

/** "1000 my-app [main img:1, db postgres:16]" for each app of a target. */
export function describeTargetApps(apps: Record<string, unknown>): string[] {
  return Object.entries(apps).map(([id, app]) => {
    if (!isObject(app)) return id;
    const name = typeof app['appName'] === 'string' ? ` ${app['appName']}` : '';
    const release = app['commit'] ?? app['releaseId'];
    const services = Array.isArray(app['services'])
      ? (app['services'] as unknown[]).filter(isObject).map((s) =>
        `${String(s['serviceName'])}${s['image'] === undefined ? '' : ` ${String(s['image'])}`}`
      )
      : [];
    return `${id}${name}${release === undefined ? '' : ` @${String(release)}`}${
      services.length === 0 ? '' : ` [${services.join(', ')}]`
    }`;
  });
}

/** "1000 running", "2000 main=running db=exited(1)" for each reported app. */
export function describeReportedApps(apps: Record<string, unknown>): string[] {
  return Object.entries(apps).map(([id, app]) => {
    if (!isObject(app)) return id;
    const services = isObject(app['services'])
      ? Object.entries(app['services']).map(([name, s]) => {
        if (!isObject(s)) return name;
        const exit = s['exitCode'] === undefined ? '' : `(${String(s['exitCode'])})`;
        const progress = s['downloadProgress'] === undefined ? '' : ` ${String(s['downloadProgress'])}%`;
        return `${name}=${String(s['status'] ?? '?')}${exit}${progress}`;
      })
      : [];
    const status = app['status'] === undefined ? '' : ` ${String(app['status'])}`;
    return `${id}${status}${services.length === 0 ? '' : ` ${services.join(' ')}`}`;
  });
}

/** "key=value key2=value2" of a flat record, skipping nulls. */
export function describeFields(record: Record<string, unknown> | undefined | null): string {
  if (record === undefined || record === null) return '';
  return Object.entries(record).filter(([, v]) => v !== null && v !== undefined).map(([k, v]) =>
    `${k}=${compact(v, 40)}`
  ).join(' ');
}
