// The open SSE streams of one app: capped per credential and in all, and each credential
// re-checked every `recheckMs` while it has a stream open. Issue #16: 500 streams were
// accepted (+100 MiB), and a stream kept delivering after its admin token was revoked.
import { clearInterval, setInterval } from 'node:timers';
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

type Entry = {
  secret: string;
  streams: Set<{ end: (why: StreamEnd) => void }>;
  timer: ReturnType<typeof setInterval>;
  lastVerified: number;
  checking: boolean;
};

/**
 * A registry with `limits`; `verify(credentialId, secret)` says whether the credential is
 * still valid (as authentication would decide it now). A credential found invalid ends its
 * streams; one that cannot be checked (database down) ends them after three periods.
 */
export function createLiveStreams(
  limits: LiveStreamLimits,
  verify: (credentialId: string, secret: string) => Promise<boolean>,
  onError: (message: string, error: unknown) => void = () => {},
): LiveStreams {
  const credentials = new Map<string, Entry>();
  let size = 0;

  const endAll = (credentialId: string, entry: Entry, why: StreamEnd) => {
    for (const stream of [...entry.streams]) stream.end(why);
    credentials.delete(credentialId);
    clearInterval(entry.timer);
  };

  const recheck = async (credentialId: string, entry: Entry) => {
    if (entry.checking) return;
    entry.checking = true;
    try {
      const valid = await verify(credentialId, entry.secret);
      if (valid) entry.lastVerified = Date.now();
      else {
        endAll(credentialId, entry, {
          code: 'credentials_revoked',
          message: 'the credentials of this stream were revoked or have expired',
        });
      }
    } catch (error) {
      if (Date.now() - entry.lastVerified > 3 * limits.recheckMs) {
        onError('event stream: credentials could not be re-checked; ending its streams', error);
        endAll(credentialId, entry, {
          code: 'credentials_unverified',
          message: 'the credentials of this stream could not be re-checked; reconnect later',
        });
      }
    } finally {
      entry.checking = false;
    }
  };

  return {
    get size() {
      return size;
    },
    open(credentialId, secret) {
      const existing = credentials.get(credentialId);
      if (existing !== undefined && existing.streams.size >= limits.maxStreamsPerToken) {
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
      let entry = existing;
      if (entry === undefined) {
        const created: Entry = {
          secret,
          streams: new Set(),
          timer: setInterval(() => void recheck(credentialId, created), limits.recheckMs),
          lastVerified: Date.now(),
          checking: false,
        };
        // a check due never keeps the process alive
        created.timer.unref();
        credentials.set(credentialId, created);
        entry = created;
      }
      const controller = new AbortController();
      let ended: StreamEnd | null = null;
      let open = true;
      const member = {
        end: (why: StreamEnd) => {
          ended = why;
          close();
          controller.abort();
        },
      };
      const owner = entry;
      const close = () => {
        if (!open) return;
        open = false;
        size -= 1;
        owner.streams.delete(member);
        if (owner.streams.size === 0 && credentials.get(credentialId) === owner) {
          credentials.delete(credentialId);
          clearInterval(owner.timer);
        }
      };
      owner.streams.add(member);
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
