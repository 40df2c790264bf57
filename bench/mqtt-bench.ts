// The MQTT part of `npm run bench:ingest -- --transport mqtt` (issue #18): the registered
// devices get their MQTT credential, connect (one connection each), send the same reports over
// QoS 1 as the HTTP run did, and then the target-change → device latency is measured.
import { sql } from 'slonik';
import { z } from 'zod';
import { issueCredential } from '../infra/mqtt/credentials-store.ts';
import type { CredentialHasher } from '../infra/devices/credentials.ts';
import { createDatabasePool } from '../infra/postgres/pool.ts';
import type { LoadResult } from './load.ts';
import { connectFleet, latencyFigures, measureTargetLatency, type MqttBenchDevice, runMqttLoad } from './mqtt-load.ts';

/** Runs the MQTT load and the target latency probe; returns the load, events stored and the latency text. */
export async function benchMqtt<D extends { uuid: string }>(options: {
  databaseUrl: string;
  /** The service's credential hasher (its pepper from its DATA_DIR): its broker checks passwords with it. */
  hasher: CredentialHasher;
  broker: string;
  apiBase: string;
  adminToken: string;
  devices: D[];
  concurrency: number;
  durationMs: number;
  rate?: number | undefined;
  payload: (i: number, device: D) => string;
  /** Sorts report i's acknowledgement (e.g. state change or metrics only). */
  tag?: (i: number) => string;
  /** The first report's number (after the HTTP run's, so each report is new). */
  firstIndex?: number;
  targetSamples: number;
}): Promise<{ load: LoadResult; stored: number; samples: number; targets: string }> {
  const pool = await createDatabasePool(options.databaseUrl, { maximumPoolSize: 4 });
  const count = () =>
    pool.oneFirst(sql.type(z.object({ n: z.number() }))`
      SELECT count(*)::int AS n FROM events WHERE event_type = 'current_state.updated'`);
  const countSamples = () =>
    pool.oneFirst(sql.type(z.object({ n: z.number() }))`SELECT count(*)::int AS n FROM device_metrics`);
  try {
    const byUuid = new Map(options.devices.map((d) => [d.uuid, d]));
    const devices: MqttBenchDevice[] = [];
    for (const device of options.devices) {
      const credential = await issueCredential(pool, options.hasher, device.uuid);
      if (credential === null) throw new Error(`no MQTT credential for ${device.uuid}`);
      devices.push(credential);
    }
    const t0 = performance.now();
    const clients = await connectFleet(options.broker, devices);
    console.log(`\nconnected ${clients.length} devices over MQTT in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    try {
      const before = await count();
      const samplesBefore = await countSamples();
      const load = await runMqttLoad({
        clients,
        devices,
        concurrency: options.concurrency,
        durationMs: options.durationMs,
        rate: options.rate,
        payload: (i, device) => options.payload(i, byUuid.get(device.uuid)!),
        tag: options.tag,
        firstIndex: options.firstIndex,
      });
      const stored = (await count()) - before;
      const samples = (await countSamples()) - samplesBefore;
      const latency = await measureTargetLatency({
        apiBase: options.apiBase,
        adminToken: options.adminToken,
        clients,
        devices,
        samples: options.targetSamples,
      });
      const request = latencyFigures(latency.fromRequest);
      const answer = latencyFigures(latency.fromAnswer);
      const targets = [
        `\ntarget change → device (MQTT, loopback, ${latency.fromRequest.length} targets one after another)`,
        `  from the POST     p50 ${request.p50}  p90 ${request.p90}  p99 ${request.p99}  max ${request.max} ms`,
        `  from its answer   p50 ${answer.p50}  p90 ${answer.p90}  p99 ${answer.p99}  max ${answer.max} ms`,
      ].join('\n');
      return { load, stored, samples, targets };
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    }
  } finally {
    await pool.end();
  }
}
