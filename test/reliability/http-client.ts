// A small HTTP client over node:http for the reliability suites: any method, raw bodies
// and headers exactly as given (wrong content types, duplicate JSON keys, oversized
// bodies), keep-alive through an agent, and a timeout, so a hanging server is a failure
// rather than a hung test.
import { Agent, request } from 'node:http';
import { Buffer } from 'node:buffer';

/** One request. `body` is sent as-is; an object is JSON-encoded with a JSON content type. */
export type HttpRequest = {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer | object;
};

/** What came back; `json` is undefined when the body is not JSON. */
export type HttpResponse = {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // deno-lint-ignore no-explicit-any -- tests read response bodies as loose JSON
  json: any;
  ms: number;
};

/** Sends one request to `baseUrl`; rejects on a network error or after `timeoutMs`. */
export function send(
  baseUrl: string,
  req: HttpRequest,
  options: { agent?: Agent; timeoutMs?: number } = {},
): Promise<HttpResponse> {
  const url = new URL(baseUrl);
  const headers: Record<string, string> = { ...req.headers };
  let payload: Buffer | undefined;
  if (Buffer.isBuffer(req.body)) payload = req.body;
  else if (typeof req.body === 'string') payload = Buffer.from(req.body);
  else if (req.body !== undefined) {
    payload = Buffer.from(JSON.stringify(req.body));
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      headers['Content-Type'] = 'application/json';
    }
  }
  if (
    payload !== undefined &&
    !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length' || h.toLowerCase() === 'transfer-encoding')
  ) {
    headers['Content-Length'] = String(payload.length);
  }
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const r = request({
      host: url.hostname,
      port: url.port,
      method: req.method,
      path: req.path,
      headers,
      agent: options.agent ?? false,
      timeout: options.timeoutMs ?? 30_000,
    }, (res) => {
      // an event stream never ends: its head is the answer
      if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: '',
          json: undefined,
          ms: performance.now() - started,
        });
        r.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text === '' ? undefined : JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, ms: performance.now() - started });
      });
    });
    r.on(
      'timeout',
      () => r.destroy(new Error(`no answer to ${req.method} ${req.path} within ${options.timeoutMs ?? 30_000} ms`)),
    );
    r.on('error', reject);
    r.end(payload);
  });
}

/** A keep-alive agent for `connections` parallel requests. */
export function keepAliveAgent(connections: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
}
