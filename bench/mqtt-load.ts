// MQTT load for the benchmarks (issue #18): every device its own MQTT.js connection, as a
// fleet would be; `concurrency` workers each publish one QoS 1 state report at a time (to the
// next device that has none in flight) until the deadline and wait for its PUBACK, which
// devicetrail sends only after the report's events are committed: publish → PUBACK is the
// transport's latency, comparable with an HTTP request's. Also the target-change → device
// latency: a subscribed device's time from the admin's POST to the retained notice.
import type { Buffer } from 'node:buffer';
import mqtt, { type MqttClient } from 'mqtt';
import type { LoadResult } from './load.ts';

/** A device with its MQTT credential. */
export type MqttBenchDevice = { uuid: string; username: string; password: string };

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const round = (x: number) => Math.round(x * 10) / 10;

/** Latency figures (ms) of a sample. */
export function latencyFigures(latencies: number[]): Pick<LoadResult, 'p50' | 'p90' | 'p99' | 'max'> {
  const sorted = Float64Array.from(latencies).sort();
  return {
    p50: round(percentile(sorted, 0.5)),
    p90: round(percentile(sorted, 0.9)),
    p99: round(percentile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? 0),
  };
}

/** Connects every device (50 at a time); resolves with their clients in the same order. */
export async function connectFleet(broker: string, devices: MqttBenchDevice[]): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  for (let start = 0; start < devices.length; start += 50) {
    clients.push(
      ...(await Promise.all(
        devices.slice(start, start + 50).map((d) =>
          mqtt.connectAsync(broker, {
            clientId: d.username,
            username: d.username,
            password: d.password,
            reconnectPeriod: 0,
            connectTimeout: 10_000,
          }, false)
        ),
      )),
    );
  }
  return clients;
}

/**
 * Publishes reports like runLoad sends requests; `payload(i, device)` builds report i (i from
 * `firstIndex`), `tag(i)` sorts its acknowledgement into `okByTag`.
 */
export async function runMqttLoad(options: {
  clients: MqttClient[];
  devices: MqttBenchDevice[];
  concurrency: number;
  durationMs: number;
  rate?: number | undefined;
  payload: (i: number, device: MqttBenchDevice) => string;
  tag?: ((i: number) => string) | undefined;
  firstIndex?: number | undefined;
}): Promise<LoadResult> {
  const latencies: number[] = [];
  const okByTag: Record<string, number> = {};
  let ok = 0;
  let errors = 0;
  let counter = options.firstIndex ?? 0;
  let cursor = 0;
  const busy = new Set<number>();
  const start = performance.now();
  const deadline = start + options.durationMs;
  const interval = options.rate === undefined ? 0 : 1000 / options.rate;
  let nextSlot = start;

  /** The next device with no report in flight (a device's reports are handled one at a time anyway). */
  const nextDevice = (): number => {
    for (let tries = 0; tries < options.devices.length; tries += 1) {
      const i = cursor;
      cursor = (cursor + 1) % options.devices.length;
      if (!busy.has(i)) return i;
    }
    return cursor;
  };

  async function worker(): Promise<void> {
    for (;;) {
      let intended = performance.now();
      if (interval > 0) {
        intended = nextSlot;
        nextSlot += interval;
        const wait = intended - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (intended >= deadline || performance.now() >= deadline) return;
      const d = nextDevice();
      busy.add(d);
      const device = options.devices[d]!;
      const i = counter++;
      try {
        await options.clients[d]!.publishAsync(`iot/device/${device.uuid}/state`, options.payload(i, device), {
          qos: 1,
        });
        ok += 1;
        const tag = options.tag?.(i);
        if (tag !== undefined) okByTag[tag] = (okByTag[tag] ?? 0) + 1;
      } catch {
        errors += 1;
      } finally {
        busy.delete(d);
      }
      latencies.push(performance.now() - intended);
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return {
    durationS: (performance.now() - start) / 1000,
    ok,
    non2xx: 0,
    errors,
    statuses: {},
    ...(options.tag === undefined ? {} : { okByTag }),
    ...latencyFigures(latencies),
  };
}

/**
 * Target change → device: for `samples` devices in turn (each subscribed to its target topic),
 * POSTs a new target and times until the device receives the notice of that version. Returns
 * the latencies (ms) from sending the POST, and from its answer.
 */
export async function measureTargetLatency(options: {
  apiBase: string;
  adminToken: string;
  clients: MqttClient[];
  devices: MqttBenchDevice[];
  samples: number;
}): Promise<{ fromRequest: number[]; fromAnswer: number[] }> {
  const fromRequest: number[] = [];
  const fromAnswer: number[] = [];
  const n = Math.min(options.samples, options.devices.length);
  await Promise.all(
    options.clients.slice(0, n).map((c, i) =>
      c.subscribeAsync(`iot/device/${options.devices[i]!.uuid}/target`, { qos: 1 })
    ),
  );
  for (let i = 0; i < n; i += 1) {
    const device = options.devices[i]!;
    const client = options.clients[i]!;
    const topic = `iot/device/${device.uuid}/target`;
    let answeredAt = 0;
    const received = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no target notice for ${device.uuid} within 10 s`)), 10_000);
      const onMessage = (t: string, payload: Buffer) => {
        if (t !== topic || (JSON.parse(payload.toString()) as { version?: number }).version === undefined) return;
        clearTimeout(timer);
        client.off('message', onMessage);
        resolve(performance.now());
      };
      client.on('message', onMessage);
    });
    const sent = performance.now();
    const response = await fetch(`${options.apiBase}/devices/${device.uuid}/target-state`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ apps: { '1000': { image: `registry.example/app:1.${i}` } } }),
    });
    answeredAt = performance.now();
    if (!response.ok) throw new Error(`target: ${response.status} ${await response.text()}`);
    const at = await received;
    fromRequest.push(at - sent);
    fromAnswer.push(Math.max(0, at - answeredAt));
  }
  return { fromRequest, fromAnswer };
}
