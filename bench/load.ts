// A small HTTP load generator for the benchmarks: `connections` keep-alive workers send
// requests until the deadline, and in-flight requests are awaited, so every response is
// counted (an acked request is never missed when comparing with the rows stored).
import http from 'node:http';
import { Buffer } from 'node:buffer';

/** One request to send; `tag` sorts it into a group whose 2xx answers are counted apart (`okByTag`). */
export type LoadRequest = {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  tag?: string | undefined;
};

/** Load options; `rate` (requests/s over all workers) paces the load, else as fast as possible. */
export type LoadOptions = {
  port: number;
  connections: number;
  durationMs: number;
  rate?: number | undefined;
  next: (i: number) => LoadRequest;
};

/** What a run measured; latencies in ms. */
export type LoadResult = {
  durationS: number;
  ok: number;
  /** 2xx answers per request tag (when the requests had tags). */
  okByTag?: Record<string, number>;
  non2xx: number;
  errors: number;
  statuses: Record<number, number>;
  p50: number;
  p90: number;
  p99: number;
  max: number;
};

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** Runs the load and returns figures. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.connections });
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const okByTag: Record<string, number> = {};
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let counter = 0;
  const start = performance.now();
  const deadline = start + options.durationMs;
  const interval = options.rate === undefined ? 0 : 1000 / options.rate;
  let nextSlot = start;

  const send = (req: LoadRequest) =>
    new Promise<number>((resolve) => {
      const r = http.request({
        host: '127.0.0.1',
        port: options.port,
        method: req.method,
        path: req.path,
        agent,
        headers: { ...req.headers, 'content-length': Buffer.byteLength(req.body) },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      r.on('error', () => resolve(0));
      r.end(req.body);
    });

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
      const request = options.next(counter++);
      const status = await send(request);
      // paced: latency from the intended send time (no coordinated omission)
      latencies.push(performance.now() - intended);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 0) errors += 1;
      else if (status >= 200 && status < 300) {
        ok += 1;
        if (request.tag !== undefined) okByTag[request.tag] = (okByTag[request.tag] ?? 0) + 1;
      } else non2xx += 1;
    }
  }
  await Promise.all(Array.from({ length: options.connections }, worker));
  const durationS = (performance.now() - start) / 1000;
  agent.destroy();
  const sorted = Float64Array.from(latencies).sort();
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    durationS,
    ok,
    okByTag,
    non2xx,
    errors,
    statuses,
    p50: round(percentile(sorted, 0.5)),
    p90: round(percentile(sorted, 0.9)),
    p99: round(percentile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? 0),
  };
}
