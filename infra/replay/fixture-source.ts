// Fixture files as a replay source: NDJSON (optionally gzip-compressed), one event row per
// line, as `export` writes them. Rows are validated, their hash chains checked, and each
// device's events replayed with the same fold, with no database at all.
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { eventHash, GENESIS_HASH } from '../event-store/event-hash.ts';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';
import { foldFrom, initialBase, instantMs, toDeviceEvent } from '../../domain/replay/history.ts';
import type { DeviceSummary, ReplaySource } from '../../domain/replay/source.ts';
import { Buffer } from 'node:buffer';
import { hashEventSecrets, type HashSecret } from '../../domain/device/secrets.ts';

/** A fixture that cannot be read: names the file and line. */
export class FixtureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FixtureError';
  }
}

/** The rows of NDJSON text, validated; `name` is for messages. */
export function parseNdjson(text: string, name: string): StoredEvent[] {
  const rows: StoredEvent[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new FixtureError(`${name}:${i + 1}: not JSON (${(error as Error).message})`);
    }
    const row = storedEventRow.safeParse(value);
    if (!row.success) {
      const issue = row.error.issues[0]!;
      throw new FixtureError(`${name}:${i + 1}: not an event row: ${issue.path.join('.') || 'row'}: ${issue.message}`);
    }
    rows.push({ ...row.data, timestamp: new Date(row.data.timestamp).toISOString() });
  });
  return rows;
}

/** Reads a fixture file (.ndjson, or .ndjson.gz / .gz compressed). */
export async function readFixtureFile(file: string): Promise<StoredEvent[]> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new FixtureError(
      `cannot read fixture ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const text = file.endsWith('.gz') ? gunzipSync(bytes).toString('utf8') : bytes.toString('utf8');
  return parseNdjson(text, file);
}

/** One device's events in a fixture, checked: versions contiguous, hash chain intact, data valid. */
export function checkStream(uuid: string, events: readonly StoredEvent[], name: string): void {
  let previousHash: string | null = null;
  let previousVersion: number | null = null;
  for (const event of events) {
    if (previousVersion !== null && event.aggregate_version !== previousVersion + 1) {
      throw new FixtureError(
        `${name}: device ${uuid}: version ${previousVersion + 1} is missing (next is ${event.aggregate_version})`,
      );
    }
    // a stream cut by --since or retention starts mid-chain: its first link cannot be checked
    const chainFrom = previousHash ?? (event.aggregate_version === 1 ? GENESIS_HASH : null);
    if (chainFrom !== null && eventHash(chainFrom, event) !== event.hash) {
      throw new FixtureError(
        `${name}: device ${uuid}: event ${event.event_id} (version ${event.aggregate_version}) does not match its hash: its content or the event before it was changed`,
      );
    }
    try {
      toDeviceEvent(event, true);
    } catch (error) {
      const issue = (error as { issues?: { path: (string | number)[]; message: string }[] }).issues?.[0];
      const why = issue === undefined ? (error as Error).message : `data.${issue.path.join('.')}: ${issue.message}`;
      throw new FixtureError(
        `${name}: device ${uuid}: event ${event.event_id} (version ${event.aggregate_version}, ${event.event_type}): ${why}`,
      );
    }
    previousHash = event.hash;
    previousVersion = event.aggregate_version;
  }
}

/** The device streams of fixture rows, each in version order. */
function deviceStreams(rows: readonly StoredEvent[]): Map<string, StoredEvent[]> {
  const streams = new Map<string, StoredEvent[]>();
  for (const row of rows) {
    if (row.aggregate_type !== 'device') continue;
    const list = streams.get(row.aggregate_id);
    if (list === undefined) streams.set(row.aggregate_id, [row]);
    else list.push(row);
  }
  for (const events of streams.values()) events.sort((a, b) => a.aggregate_version - b.aggregate_version);
  return streams;
}

/**
 * A replay source over the events of one or more fixture files. Each device's chain is checked
 * here unless `chainChecked` says the rows' stored form was checked already (openFixtures checks
 * the bytes as stored, then shows secrets as markers, which the stored hashes do not cover).
 */
export function fixtureSource(
  rows: readonly StoredEvent[],
  name: string,
  options: { chainChecked?: boolean } = {},
): ReplaySource {
  const streams = deviceStreams(rows);
  if (options.chainChecked !== true) {
    for (const [uuid, events] of streams) checkStream(uuid, events, name);
  }
  const summaries = new Map<string, DeviceSummary>([...streams].map(([uuid, events]) => {
    const provisioned = events.find((e) => e.event_type === 'device.provisioned');
    const data = provisioned?.data ?? {};
    return [uuid, {
      uuid,
      device_name: typeof data['device_name'] === 'string' ? data['device_name'] : uuid,
      device_type: typeof data['device_type'] === 'string' ? data['device_type'] : 'unknown',
      fleet_id: typeof data['fleet_id'] === 'string' ? data['fleet_id'] : 'unknown',
      registered_at: (provisioned ?? events[0]!).timestamp,
    }];
  }));
  const last = rows.reduce<string | null>(
    (max, r) => (max === null || instantMs(r.timestamp) > instantMs(max) ? r.timestamp : max),
    null,
  );
  const now = () => last ?? new Date(0).toISOString();
  const eventsOf = (uuid: string) => streams.get(uuid) ?? [];
  const inRange = (t: string, since?: string, until?: string) =>
    (since === undefined || instantMs(t) >= instantMs(since)) &&
    (until === undefined || instantMs(t) <= instantMs(until));

  return {
    description: `fixture ${name}`,
    now,
    device: async (uuid) => summaries.get(uuid) ?? null,
    devices: async (filter = {}) =>
      [...summaries.values()].filter((d) => filter.fleet === undefined || d.fleet_id === filter.fleet),
    stateAt: async (uuid, at) => foldFrom(initialBase(), eventsOf(uuid), at),
    window: async (uuid, range) => ({
      base: initialBase(),
      events: eventsOf(uuid).filter((e) => instantMs(e.timestamp) <= instantMs(range.until)),
    }),
    async *exportEvents(uuid, range) {
      yield* eventsOf(uuid).filter((e) => inRange(e.timestamp, range.since, range.until));
    },
    fleetAt: async (at, options = {}) => {
      const devices = [...summaries.values()].filter((d) =>
        instantMs(d.registered_at) <= instantMs(at) && (options.fleet === undefined || d.fleet_id === options.fleet)
      );
      options.onProgress?.(0, devices.length);
      const out = devices.map((summary) => ({ summary, result: foldFrom(initialBase(), eventsOf(summary.uuid), at) }));
      options.onProgress?.(devices.length, devices.length);
      return out;
    },
    eventCounts: async (eventType, from, to) =>
      [...streams].map(([uuid, events]) => {
        const hits = events.filter((e) =>
          e.event_type === eventType && instantMs(e.timestamp) > instantMs(from) &&
          instantMs(e.timestamp) <= instantMs(to)
        );
        return {
          uuid,
          count: hits.length,
          first: hits[0]?.timestamp ?? '',
          last: hits[hits.length - 1]?.timestamp ?? '',
        };
      }).filter((c) => c.count > 0).sort((a, b) => b.count - a.count || a.uuid.localeCompare(b.uuid)),
    driftingNow: async () =>
      [...summaries.values()].flatMap((summary) => {
        const { state } = foldFrom(initialBase(), eventsOf(summary.uuid), now());
        return state.status === 'registered' && !state.drift.in_sync
          ? [{ summary, state, drift_since: state.drift_since }]
          : [];
      }),
  };
}

/** Opens fixture files as one replay source. */
export async function openFixtures(files: readonly string[], hash?: HashSecret): Promise<ReplaySource> {
  const rows: StoredEvent[] = [];
  for (const file of files) rows.push(...await readFixtureFile(file));
  // checked against their chain as stored, then shown like the database's events: secrets as
  // markers (README "Secrets"; a fixture or archive may predate the hashing)
  const name = files.join(', ');
  for (const [uuid, events] of deviceStreams(rows)) checkStream(uuid, events, name);
  const shown = hash === undefined ? rows : rows.map((row) => {
    const data = hashEventSecrets(row.event_type, row.data, hash);
    return data === row.data ? row : { ...row, data };
  });
  return fixtureSource(shown, name, { chainChecked: true });
}
