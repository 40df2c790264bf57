// The open SSE streams of one app: capped per credential and in all, and each credential
// re-checked every `recheckMs` while it has a stream open. Issue #16: 500 streams were
// accepted (+100 MiB), and a stream kept delivering after its admin token was revoked.
import { clearInterval, setInterval } from 'node:timers';
import type { Context } from 'koa';
import { HttpError } from './errors.ts';

/** Caps and re-check period (SSE_MAX_STREAMS, SSE_MAX_STREAMS_PER_TOKEN, SSE_CREDENTIAL_RECHECK). */
export type LiveStreamLimits = { maxStreams: number; maxStreamsPerToken: number; recheckMs: number };

/** The service's defaults (app/config.ts has the same). */
export const DEFAULT_LIVE_STREAM_LIMITS: LiveStreamLimits = {
  maxStreams: 200,
  maxStreamsPerToken: 20,
  recheckMs: 5000,
};

/** Why the registry ended a stream: sent to the client as the stream's last message. */
export type StreamEnd = { code: 'credentials_revoked' | 'credentials_unverified'; message: string };

/** One open stream's slot. */
export type LiveStream = {
  /** Aborted when the registry ends the stream; `ended` then says why. */
  readonly signal: AbortSignal;
  readonly ended: StreamEnd | null;
  /** Frees the slot (idempotent). */
  close: () => void;
};

/** Open streams and their caps. */
export type LiveStreams = {
  /** Takes a slot for a stream of `credentialId`, or throws 429 (credential's cap) / 503 (total cap). */
  open: (credentialId: string, secret: string) => LiveStream;
  readonly size: number;
};

// a stream is long-lived: a slot rarely frees within seconds
const RETRY_AFTER_S = '30';

/** The streams opened with one secret, re-checked together. */
type Check = {
  credentialId: string;
  secret: string;
  streams: Set<{ end: (why: StreamEnd) => void }>;
  timer: ReturnType<typeof setInterval>;
  lastVerified: number;
  checking: boolean;
};

/**
 * A registry with `limits`; `verify(credentialId, secret)` says whether the secret still
 * authenticates that credential (as authentication would decide it now). Streams are counted
 * per credential; each secret is re-checked once per period however many streams it has open.
 * A secret found invalid ends its streams; one that cannot be checked (database down) ends
 * them after three periods.
 */
export function createLiveStreams(
  limits: LiveStreamLimits,
  verify: (credentialId: string, secret: string) => Promise<boolean>,
  onError: (message: string, error: unknown) => void = () => {},
): LiveStreams {
  const perCredential = new Map<string, number>();
  const checks = new Map<string, Check>();
  let size = 0;

  const endAll = (key: string, check: Check, why: StreamEnd) => {
    for (const stream of [...check.streams]) stream.end(why);
    checks.delete(key);
    clearInterval(check.timer);
  };

  const recheck = async (key: string, check: Check) => {
    if (check.checking) return;
    check.checking = true;
    try {
      const valid = await verify(check.credentialId, check.secret);
      if (valid) check.lastVerified = Date.now();
      else {
        endAll(key, check, {
          code: 'credentials_revoked',
          message: 'the credentials of this stream were revoked or have expired',
        });
      }
    } catch (error) {
      if (Date.now() - check.lastVerified > 3 * limits.recheckMs) {
        onError('event stream: credentials could not be re-checked; ending its streams', error);
        endAll(key, check, {
          code: 'credentials_unverified',
          message: 'the credentials of this stream could not be re-checked; reconnect later',
        });
      }
    } finally {
      check.checking = false;
    }
  };

  return {
    get size() {
      return size;
    },
    open(credentialId, secret) {
      const open = perCredential.get(credentialId) ?? 0;
      if (open >= limits.maxStreamsPerToken) {
        throw new HttpError(
          429,
          'too_many_streams',
          `SSE_MAX_STREAMS_PER_TOKEN: this credential has ${limits.maxStreamsPerToken} streams open, the most allowed; close one first`,
          { limit: 'SSE_MAX_STREAMS_PER_TOKEN', max: limits.maxStreamsPerToken },
          { 'Retry-After': RETRY_AFTER_S },
        );
      }
      if (size >= limits.maxStreams) {
        throw new HttpError(
          503,
          'too_many_streams',
          `SSE_MAX_STREAMS: this server has ${limits.maxStreams} streams open, the most allowed; retry later`,
          { limit: 'SSE_MAX_STREAMS', max: limits.maxStreams },
          { 'Retry-After': RETRY_AFTER_S },
        );
      }
      const key = `${credentialId}\u0000${secret}`;
      let check = checks.get(key);
      if (check === undefined) {
        const created: Check = {
          credentialId,
          secret,
          streams: new Set(),
          timer: setInterval(() => void recheck(key, created), limits.recheckMs),
          lastVerified: Date.now(),
          checking: false,
        };
        // a check due never keeps the process alive
        created.timer.unref();
        checks.set(key, created);
        check = created;
      }
      const owner = check;
      const controller = new AbortController();
      let ended: StreamEnd | null = null;
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        size -= 1;
        const left = (perCredential.get(credentialId) ?? 1) - 1;
        if (left === 0) perCredential.delete(credentialId);
        else perCredential.set(credentialId, left);
        owner.streams.delete(member);
        if (owner.streams.size === 0 && checks.get(key) === owner) {
          checks.delete(key);
          clearInterval(owner.timer);
        }
      };
      const member = {
        end: (why: StreamEnd) => {
          ended = why;
          close();
          controller.abort();
        },
      };
      owner.streams.add(member);
      perCredential.set(credentialId, open + 1);
      size += 1;
      return {
        signal: controller.signal,
        get ended() {
          return ended;
        },
        close,
      };
    },
  };
}

/**
 * Starts a Server-Sent Events response on `ctx`, written by hand from here on: the socket kept
 * open without a timeout, the headers sent, Koa out of the way. Returns a signal that aborts
 * when the client goes or the stream's slot ends. A client that closes a stream with data unread
 * resets the socket; on-finished hands that ECONNRESET to ctx.onerror, and Koa's default listener
 * would print a stack for each (bench:streams: one per stream): it is how a stream ends, so the
 * error is marked exposed and not printed.
 */
export function startEventStream(ctx: Context, slot: LiveStream): AbortSignal {
  ctx.req.socket.setTimeout(0);
  ctx.req.socket.setNoDelay(true);
  ctx.req.socket.setKeepAlive(true);
  ctx.status = 200;
  ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
  ctx.set('Cache-Control', 'no-cache, no-transform');
  ctx.set('X-Accel-Buffering', 'no');
  ctx.respond = false;
  ctx.res.flushHeaders();
  const clientGone = (error: Error & { expose?: boolean }) => {
    error.expose = true;
  };
  ctx.req.socket.prependListener('error', clientGone);
  const closed = new AbortController();
  const gone = () => {
    ctx.req.socket.off('error', clientGone);
    closed.abort();
  };
  ctx.res.once('close', gone);
  slot.signal.addEventListener('abort', () => closed.abort());
  // a client that left while the handler awaited the stream's start: its 'close' event has already fired
  if (ctx.req.socket.destroyed) gone();
  return closed.signal;
}
