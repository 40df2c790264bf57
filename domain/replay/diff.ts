// What changed in a device's state between two instants, and which events caused each change.
// The path list is generic over the state's fields; the summary names the usual suspects
// (target version, apps, services, config, active flag, reported apps, sync).
import { jsonEqual } from '../device/drift.ts';
import type { DeviceState } from '../device/state.ts';
import { inSync } from './drift.ts';
import { type EventRef, eventRef, FOLD_SLICE, type History, runThrough } from './history.ts';
import { own } from '../own.ts';

/** One changed leaf (or whole array) of the state. */
export type PathChange = { path: string; before: unknown; after: unknown };

/** Bookkeeping fields every event moves; left out of change lists. */
const NOISE = new Set(['version', 'updated_at', 'current.reported_at']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Structural differences between two JSON values, as dotted paths; arrays compare whole. */
export function jsonDiff(a: unknown, b: unknown, path: string[] = [], out: PathChange[] = []): PathChange[] {
  if (jsonEqual(a, b)) return out;
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) jsonDiff(a[key], b[key], [...path, key], out);
    return out;
  }
  out.push({ path: path.join('.'), before: a, after: b });
  return out;
}

/** The changes between two states, without bookkeeping fields. */
export function stateChanges(a: DeviceState, b: DeviceState): PathChange[] {
  const { status: _a, ...left } = a;
  const { status: _b, ...right } = b;
  const changes = jsonDiff(left, right).filter((c) => !NOISE.has(c.path));
  if (a.status !== b.status) changes.unshift({ path: 'status', before: a.status, after: b.status });
  return changes;
}

const overlaps = (p: string, q: string) => p === q || p.startsWith(`${q}.`) || q.startsWith(`${p}.`);

/** Keys added, removed and changed between two records. */
export type KeyDiff = { added: string[]; removed: string[]; changed: string[] };

function keyDiff(
  a: Record<string, unknown> | undefined | null,
  b: Record<string, unknown> | undefined | null,
): KeyDiff {
  const left = a ?? {};
  const right = b ?? {};
  return {
    added: Object.keys(right).filter((k) => !Object.hasOwn(left, k)),
    removed: Object.keys(left).filter((k) => !Object.hasOwn(right, k)),
    changed: Object.keys(right).filter((k) => Object.hasOwn(left, k) && !jsonEqual(left[k], right[k])),
  };
}

/** Services of one target app, compared by serviceName. */
export type ServiceDiff = {
  app_id: string;
  added: string[];
  removed: string[];
  changed: { service: string; fields: string[] }[];
};

function servicesByName(app: unknown): Record<string, Record<string, unknown>> {
  const services = isObject(app) && Array.isArray(app['services']) ? app['services'] as unknown[] : [];
  return Object.fromEntries(services.filter(isObject).map((s) => [String(s['serviceName']), s]));
}

/** The human-sized summary of a change between two states. */
export type DiffSummary = {
  existed_before: boolean;
  target_version: { before: number | null; after: number | null } | null;
  target_apps: KeyDiff;
  target_services: ServiceDiff[];
  config: KeyDiff;
  is_active: { before: boolean | null; after: boolean | null } | null;
  reported_apps: KeyDiff;
  in_sync: { before: boolean; after: boolean } | null;
};

const registered = (s: DeviceState) => (s.status === 'registered' ? s : null);

/** Summarises the change between two states. */
export function summarise(a: DeviceState, b: DeviceState): DiffSummary {
  const ra = registered(a);
  const rb = registered(b);
  const va = ra?.target?.version ?? null;
  const vb = rb?.target?.version ?? null;
  const appsA = ra?.target?.apps ?? {};
  const appsB = rb?.target?.apps ?? {};
  const targetApps = keyDiff(appsA, appsB);
  const targetServices: ServiceDiff[] = [];
  for (const appId of targetApps.changed) {
    const left = servicesByName(own(appsA, appId));
    const right = servicesByName(own(appsB, appId));
    const sd = keyDiff(left, right);
    if (sd.added.length + sd.removed.length + sd.changed.length === 0) continue;
    targetServices.push({
      app_id: appId,
      added: sd.added,
      removed: sd.removed,
      changed: sd.changed.map((service) => ({
        service,
        fields: jsonDiff(left[service], right[service]).map((c) => c.path),
      })),
    });
  }
  return {
    existed_before: ra !== null,
    target_version: va === vb ? null : { before: va, after: vb },
    target_apps: targetApps,
    target_services: targetServices,
    config: keyDiff(ra?.target?.config, rb?.target?.config),
    is_active: ra?.is_active === rb?.is_active ? null : { before: ra?.is_active ?? null, after: rb?.is_active ?? null },
    reported_apps: keyDiff(ra?.current?.apps, rb?.current?.apps),
    in_sync: inSync(a) === inSync(b) ? null : { before: inSync(a), after: inSync(b) },
  };
}

/** A change with the events in the window that touched it. */
export type AttributedChange = PathChange & { caused_by: EventRef[] };

/** The diff between a history's start and end. */
export type DiffReport = {
  from: string;
  to: string;
  summary: DiffSummary;
  changes: AttributedChange[];
  /** Every event in (from, to], with the state paths it changed (a no-op shows none). */
  events: (EventRef & { changed: string[] })[];
};

/** Diffs the state at `history.since` against the state at `history.until`. */
export function diffReport(history: History): DiffReport {
  return runThrough(diffOf(history));
}

/** The diff report as a generator that yields after every FOLD_SLICE steps compared (for a pausing caller). */
export function* diffOf(history: History): Generator<void, DiffReport, void> {
  const end = history.steps.length === 0 ? history.start : history.steps[history.steps.length - 1]!.after;
  const changes: AttributedChange[] = stateChanges(history.start, end).map((change) => ({ ...change, caused_by: [] }));
  const events: DiffReport['events'] = [];
  for (const [i, step] of history.steps.entries()) {
    const ref = eventRef(step.event);
    const changed = stateChanges(step.before, step.after).map((c) => c.path);
    events.push({ ...ref, changed });
    for (const change of changes) {
      if (changed.some((p) => overlaps(p, change.path))) change.caused_by.push(ref);
    }
    if ((i + 1) % FOLD_SLICE === 0) yield;
  }
  return {
    from: history.since ?? history.until,
    to: history.until,
    summary: summarise(history.start, end),
    changes,
    events,
  };
}
