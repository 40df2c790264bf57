// Holds a database to the promises its API made, from the outside (plain SQL over pg):
// every acknowledged request has the events its answer promised (found by
// metadata.request_id), every stream's versions run 1..n without gaps and match `streams`,
// its timestamps never decrease in version order (the head holds the last one), every hash
// chain is intact, every device's read model equals the fold of its events, and every
// acknowledged report's metrics sample is in device_metrics (issue #15).
import pg from 'pg';
import { fold } from '../../domain/device/evolve.ts';
import { parseDeviceEvent } from '../../domain/device/events.ts';
import { initialState } from '../../domain/device/state.ts';
import { canonicalJson, eventHash, GENESIS_HASH } from '../../infra/event-store/event-hash.ts';
import type { Ack } from './workload.ts';

/** What the check found; `problems` lists the first few of each kind. */
export type StoreReport = {
  acked: number;
  /** Events the acknowledged answers promised (at least). */
  eventsPromised: number;
  /** Of those, events found in the store. */
  eventsFound: number;
  /** Promised events not in the store. Must be 0. */
  missing: number;
  totalEvents: number;
  streams: number;
  devices: number;
  gaps: number;
  brokenChains: number;
  /** Streams with an event stamped before the one before it, or a head without the last timestamp. Must be 0. */
  outOfOrder: number;
  foldMismatches: number;
  /** Acknowledged reports that carried metrics, and samples of theirs not found (per device: fewer samples than such acks). Must be 0. */
  samplesPromised: number;
  missingSamples: number;
  problems: string[];
};

type EventRow = {
  event_id: string;
  event_type: string;
  aggregate_type: string;
  aggregate_id: string;
  aggregate_version: string;
  data: Record<string, unknown>;
  metadata: Record<string, unknown>;
  timestamp: Date;
  source: string;
  hash: string;
};

/** Checks the database at `url` against `acks`. */
export async function checkStore(url: string, acks: readonly Ack[]): Promise<StoreReport> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const problems: string[] = [];
  const note = (kind: string, text: string) => {
    if (problems.filter((p) => p.startsWith(kind)).length < 5) problems.push(`${kind}: ${text}`);
  };
  try {
    const { rows } = await client.query<EventRow>(`
      SELECT event_id::text, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash
        FROM events ORDER BY aggregate_type, aggregate_id, aggregate_version`);

    // --- every acknowledged request: its events are there
    const byRequest = new Map<string, EventRow[]>();
    for (const row of rows) {
      const rid = row.metadata['request_id'];
      if (typeof rid !== 'string') continue;
      const list = byRequest.get(rid) ?? [];
      list.push(row);
      byRequest.set(rid, list);
    }
    let promised = 0;
    let found = 0;
    let missing = 0;
    for (const ack of acks) {
      const events = byRequest.get(ack.requestId) ?? [];
      const want = Math.max(ack.exactEvents ?? 0, ack.minEvents, ack.eventIds.length);
      promised += want;
      found += Math.min(events.length, want);
      let lost = Math.max(0, want - events.length);
      for (const id of ack.eventIds) {
        if (!events.some((e) => e.event_id === id)) {
          lost = Math.max(lost, 1);
          note('missing', `${ack.route} request ${ack.requestId}: event ${id} named in the answer is not stored`);
        }
      }
      if (
        ack.version !== undefined &&
        !events.some((e) => e.aggregate_id === ack.aggregateId && Number(e.aggregate_version) === ack.version)
      ) {
        lost = Math.max(lost, 1);
        note(
          'missing',
          `${ack.route} request ${ack.requestId}: answered version ${ack.version} of ${ack.aggregateId}, no such event with its request id`,
        );
      }
      if (lost > 0) {
        note(
          'missing',
          `${ack.route} request ${ack.requestId} (${ack.aggregateId}): ${want} promised, ${events.length} stored`,
        );
      }
      missing += lost;
      if (ack.exactEvents !== undefined && events.length > ack.exactEvents) {
        note(
          'extra',
          `${ack.route} request ${ack.requestId}: answered ${ack.exactEvents} events, ${events.length} stored`,
        );
      }
      for (const e of events) {
        // isolation: a device's request writes only to that device's stream
        if (e.aggregate_type === 'device' && e.aggregate_id !== ack.aggregateId) {
          note('isolation', `${ack.route} request ${ack.requestId} wrote to ${e.aggregate_id}, not ${ack.aggregateId}`);
        }
      }
    }

    // --- streams: versions 1..n, no gaps, head and hash chain agree
    const heads = new Map(
      (await client.query<{ key: string; version: string; last_hash: string; last_timestamp: Date | null }>(
        `SELECT aggregate_type || '/' || aggregate_id AS key, version, last_hash, last_timestamp FROM streams`,
      )).rows.map((r) => [r.key, r]),
    );
    const streams = new Map<string, EventRow[]>();
    for (const row of rows) {
      const key = `${row.aggregate_type}/${row.aggregate_id}`;
      const list = streams.get(key) ?? [];
      list.push(row);
      streams.set(key, list);
    }
    let gaps = 0;
    let brokenChains = 0;
    let outOfOrder = 0;
    for (const [key, events] of streams) {
      const backwards = events.findIndex((e, i) => i > 0 && e.timestamp < events[i - 1]!.timestamp);
      const lastAt = events[events.length - 1]!.timestamp.getTime();
      if (backwards >= 0 || heads.get(key)?.last_timestamp?.getTime() !== lastAt) {
        outOfOrder += 1;
        note(
          'order',
          backwards >= 0
            ? `${key}: version ${events[backwards]!.aggregate_version} is stamped before version ${
              events[backwards - 1]!.aggregate_version
            }`
            : `${key}: the head's last_timestamp is not the last event's`,
        );
      }
      let previous = GENESIS_HASH;
      let chainOk = true;
      events.forEach((e, i) => {
        if (Number(e.aggregate_version) !== i + 1) {
          if (chainOk) note('gap', `${key}: event ${i + 1} has version ${e.aggregate_version}`);
          chainOk = false;
        }
        const expected = eventHash(previous, {
          ...e,
          aggregate_version: Number(e.aggregate_version),
          timestamp: e.timestamp.toISOString(),
        });
        if (expected !== e.hash && chainOk) {
          note('chain', `${key}: hash of version ${e.aggregate_version} does not chain`);
          brokenChains += 1;
          chainOk = false;
        }
        previous = e.hash;
      });
      if (events.some((e, i) => Number(e.aggregate_version) !== i + 1)) gaps += 1;
      const head = heads.get(key);
      const last = events[events.length - 1]!;
      if (
        head === undefined || Number(head.version) !== Number(last.aggregate_version) || head.last_hash !== last.hash
      ) {
        gaps += 1;
        note(
          'head',
          `${key}: streams row ${
            head === undefined ? 'missing' : `at ${head.version}`
          }, events end at ${last.aggregate_version}`,
        );
      }
    }
    for (const key of heads.keys()) {
      if (!streams.has(key)) {
        gaps += 1;
        note('head', `${key}: a streams row without events`);
      }
    }

    // --- read models: devices.state is the fold of the device's events
    const devices = (await client.query<{ uuid: string; state: unknown; version: string }>(
      'SELECT uuid, state, version FROM devices',
    )).rows;
    let foldMismatches = 0;
    for (const device of devices) {
      const events = streams.get(`device/${device.uuid}`) ?? [];
      const folded = fold(
        events.map((e) => parseDeviceEvent({ type: e.event_type, data: e.data, timestamp: e.timestamp.toISOString() })),
        initialState(),
      );
      if (
        canonicalJson(JSON.parse(JSON.stringify(folded))) !== canonicalJson(device.state) ||
        folded.version !== Number(device.version)
      ) {
        foldMismatches += 1;
        note(
          'fold',
          `device ${device.uuid}: read model (version ${device.version}) differs from the fold of its ${events.length} events`,
        );
      }
    }
    const deviceStreams = [...streams.keys()].filter((k) => k.startsWith('device/')).length;
    if (deviceStreams !== devices.length) {
      note('fold', `${deviceStreams} device streams but ${devices.length} devices rows`);
    }
    if (deviceStreams !== devices.length) foldMismatches += Math.abs(deviceStreams - devices.length);

    // --- metrics samples (issue #15): a device has at least one per acknowledged report with metrics
    // (requests cut off may have stored one too, so more is fine)
    const wanted = new Map<string, number>();
    for (const ack of acks) if (ack.metricsSample) wanted.set(ack.aggregateId, (wanted.get(ack.aggregateId) ?? 0) + 1);
    const samples = new Map(
      (await client.query<{ device_uuid: string; n: string }>(
        `SELECT device_uuid, count(*) AS n FROM device_metrics GROUP BY device_uuid`,
      )).rows.map((r) => [r.device_uuid, Number(r.n)]),
    );
    let missingSamples = 0;
    for (const [uuid, n] of wanted) {
      const lost = Math.max(0, n - (samples.get(uuid) ?? 0));
      if (lost > 0) {
        note('samples', `device ${uuid}: ${n} acknowledged reports with metrics, ${n - lost} samples stored`);
      }
      missingSamples += lost;
    }

    return {
      acked: acks.length,
      eventsPromised: promised,
      eventsFound: found,
      missing,
      totalEvents: rows.length,
      streams: streams.size,
      devices: devices.length,
      gaps,
      brokenChains,
      outOfOrder,
      foldMismatches,
      samplesPromised: [...wanted.values()].reduce((a, b) => a + b, 0),
      missingSamples,
      problems,
    };
  } finally {
    await client.end();
  }
}

/** True when the report shows no loss and no inconsistency. */
export const storeIsSound = (r: StoreReport): boolean =>
  r.missing === 0 && r.gaps === 0 && r.brokenChains === 0 && r.outOfOrder === 0 && r.foldMismatches === 0 &&
  r.missingSamples === 0 &&
  !r.problems.some((p) => /^(extra|isolation)/.test(p));
