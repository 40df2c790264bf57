// One webhook attempt on the wire: a POST to the URL's host name that connects only to the
// address the address policy checked (a `lookup` that answers with it, so Host, TLS SNI and
// certificate checks keep the name while DNS is not asked again: no rebinding between check
// and connection), no redirects followed, no connection reused. What comes back is kept small
// and harmless (issue #16, finding 7): the status and an excerpt of at most 200 printable
// characters; failures are "connection failed" or "timed out", never the socket's errno, so
// the delivery log cannot serve as a port scanner.
import { Buffer } from 'node:buffer';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { ResolvedAddress } from './address-policy.ts';

/** What a receiver answered: its status and a sanitised excerpt of its body. */
export type WebhookResponse = { status: number; excerpt: string };

/** An attempt that got no answer: it timed out, or the connection failed (refused, reset, unreachable, TLS); nothing more is said. */
export class WebhookPostError extends Error {
  readonly kind: 'timeout' | 'connection';
  constructor(kind: 'timeout' | 'connection') {
    super(kind === 'timeout' ? 'timed out' : 'connection failed');
    this.name = 'WebhookPostError';
    this.kind = kind;
  }
}

/** Characters of a response body kept for the delivery log. */
export const EXCERPT_CHARS = 200;
/** Bytes of a response body read at most (enough for the excerpt whatever the encoding). */
const READ_BYTES = 4 * EXCERPT_CHARS;

// control, format (bidi overrides, zero-width), private-use, unassigned and surrogate code
// points, line and paragraph separators, and the replacement character of broken UTF-8
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\u2028\u2029\uFFFD]+/gu;

/** A response body as the delivery log keeps it: printable characters only, whitespace collapsed, at most 200 characters. */
export function responseExcerpt(body: Uint8Array): string {
  const text = new TextDecoder('utf-8', { fatal: false }).decode(body)
    .replace(UNPRINTABLE, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return Array.from(text).slice(0, EXCERPT_CHARS).join('').trimEnd();
}

/** A lookup that answers every query with the one checked address. */
function pinnedLookup(target: ResolvedAddress): LookupFunction {
  return ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all === true) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as LookupFunction;
}

/**
 * POSTs `body` to `url`, connecting to `target` only, within `timeoutMs` for the whole
 * exchange (connection, answer and excerpt). Resolves with any status (3xx included: redirects
 * are not followed); rejects with WebhookPostError when no answer came.
 */
export function postWebhook(
  url: URL,
  target: ResolvedAddress,
  request: { headers: Record<string, string>; body: string; timeoutMs: number },
): Promise<WebhookResponse> {
  const client = url.protocol === 'https:' ? https : http;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return new Promise<WebhookResponse>((resolve, reject) => {
    let settled = false;
    // set once the status is in: from then on, whatever ends the exchange keeps the status
    let answered: (() => void) | null = null;
    const finish = (outcome: WebhookResponse | WebhookPostError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (outcome instanceof WebhookPostError) reject(outcome);
      else resolve(outcome);
    };
    const req = client.request({
      protocol: url.protocol,
      hostname: host,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      headers: { ...request.headers, 'Content-Length': String(Buffer.byteLength(request.body)) },
      lookup: pinnedLookup(target),
      agent: false, // a fresh connection to the checked address, never a pooled one
    }, (res) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let length = 0;
      answered = () => finish({ status, excerpt: responseExcerpt(Buffer.concat(chunks).subarray(0, READ_BYTES)) });
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= READ_BYTES) answered?.();
      });
      res.on('end', () => answered?.());
      res.on('error', () => answered?.());
      res.on('close', () => answered?.());
    });
    const timer = setTimeout(() => {
      if (answered !== null) answered();
      else finish(new WebhookPostError('timeout'));
    }, request.timeoutMs);
    req.on('error', () => {
      if (answered !== null) answered();
      else finish(new WebhookPostError('connection'));
    });
    req.end(request.body);
  });
}
