// State reports over MQTT (issue #18): a publish to `iot/device/<uuid>/state` takes exactly the
// path of PATCH /api/v1/device/state (app/state-reports.ts: the same body, validation, tolerant
// fields, batch writer, lifecycle derivation) and the same per-device rate limit
// (REPORT_RATE_LIMIT). `handle` resolves once the report is dealt with, which is when the
// broker acknowledges it: after its events are committed, or after it was refused.
//
// Refused (invalid, too large, over the rate limit, a disabled device): nothing is written,
// the reason is published to `iot/device/<uuid>/state/rejected` and counted, and the message
// is acknowledged (sending it again would not help). A failure that is not the report's fault
// (the database is away) rejects: the broker withholds the PUBACK and drops the connection, so
// the device, or the broker's session, sends the message again.
//
// Redeliveries. A message can arrive twice: its commit and the crash that lost its PUBACK
// can come in that order. Each report's events carry `metadata.request_id` =
// `mqtt:<sha-256 of the payload, 24 hex>:<packet id>`, and a report whose id is among the
// device's recent ones is acknowledged without being applied again. Reports of one device
// are handled one at a time, in order, so at most one of them can be committed and not yet
// acknowledged when the process dies: the newest of the device's events, which is where the
// check looks after a restart. (A report that appended nothing leaves no id behind; applying
// it again appends nothing either.)
import { createHash } from 'node:crypto';
import { setImmediate } from 'node:timers';
import type { Buffer } from 'node:buffer';
import type { DatabasePool } from 'slonik';
import { DomainError } from '../../domain/errors.ts';
import type { EventMetadata } from '../../domain/recorded-event.ts';
import type { ReportPacket } from '../../infra/mqtt/embedded-broker.ts';
import { recentRequestIds } from '../../infra/mqtt/recent-requests.ts';
import { HttpError } from '../http/errors.ts';
import { createLimiter, type RateLimit } from '../http/middleware/rate-limit.ts';
import { assertStorableJson } from '../http/request.ts';
import { parseStateReports, type ReportsOutcome, type StateReports } from '../state-reports.ts';

/** Who sent a report and from where (null when the broker does not say: an external one). */
export type ReportSender = { uuid: string; remoteAddress: string | null };

/** How a report ended. */
export type ReportVerdict =
  | { result: 'accepted'; outcome: ReportsOutcome; ignored: string[] }
  | { result: 'duplicate' }
  | { result: 'rejected'; code: string; message: string; details?: unknown };

/** What the handler needs. */
export type ReportHandlerOptions = {
  pool: DatabasePool;
  reports: StateReports;
  clock: () => Date;
  /** REPORT_RATE_LIMIT (null: none). */
  rateLimit: RateLimit | null;
  /** BODY_LIMIT_KB in bytes: a larger payload is refused. */
  maxPayloadBytes: number;
  /** Publishes a refusal to the device's rejected topic. */
  publishRejected: (uuid: string, body: Record<string, unknown>) => Promise<void>;
  /** Called once per report with its verdict and how long it took (for metrics). */
  onVerdict?: (sender: ReportSender, verdict: ReportVerdict, seconds: number) => void;
  logError: (message: string, error: unknown) => void;
};

/** Ids kept per device for recognising redeliveries (a live reconnection resends its in-flight window). */
const RECENT_PER_DEVICE = 32;
/** Devices whose recent ids are kept in memory; others are read again from the log. */
const RECENT_DEVICES = 20_000;

/** The endpoint recorded in the metadata of events written by an MQTT report. */
export const MQTT_STATE_ENDPOINT = 'mqtt:iot/device/:uuid/state';

/** A report's identity: its payload's hash and packet id (the same when the message is sent again). */
export function reportRequestId(payload: Buffer, messageId: number | undefined): string {
  return `mqtt:${createHash('sha256').update(payload).digest('hex').slice(0, 24)}:${messageId ?? 0}`;
}

/** Creates the handler; `handle` resolves when the report may be acknowledged. */
export function createReportHandler(options: ReportHandlerOptions) {
  const limiter = options.rateLimit === null ? null : createLimiter(options.rateLimit, () => options.clock().getTime());
  const chains = new Map<string, Promise<unknown>>();
  const recent = new Map<string, string[]>();

  // devices whose ids are not in memory, looked up together: one statement per turn of the event loop
  let lookups: Map<string, { resolve: (ids: string[]) => void; reject: (error: unknown) => void }[]> | null = null;
  function lookUp(uuid: string): Promise<string[]> {
    if (lookups === null) {
      const batch = lookups = new Map();
      setImmediate(() => {
        lookups = null;
        recentRequestIds(options.pool, [...batch.keys()], { limit: RECENT_PER_DEVICE }).then(
          (found) => {
            for (const [id, waiting] of batch) {
              for (const w of waiting) w.resolve((found.get(id) ?? []).filter((r) => r.startsWith('mqtt:')));
            }
          },
          (error: unknown) => {
            for (const waiting of batch.values()) for (const w of waiting) w.reject(error);
          },
        );
      });
    }
    const batch = lookups;
    return new Promise((resolve, reject) => {
      const waiting = batch.get(uuid) ?? [];
      waiting.push({ resolve, reject });
      batch.set(uuid, waiting);
    });
  }

  async function recentOf(uuid: string): Promise<string[]> {
    let ids = recent.get(uuid);
    if (ids === undefined) ids = await lookUp(uuid);
    else recent.delete(uuid); // re-inserted below: the map iterates least recently used first
    recent.set(uuid, ids);
    if (recent.size > RECENT_DEVICES) recent.delete(recent.keys().next().value!);
    return ids;
  }

  function remember(ids: string[], id: string): void {
    ids.push(id);
    if (ids.length > RECENT_PER_DEVICE) ids.splice(0, ids.length - RECENT_PER_DEVICE);
  }

  function reject(code: string, message: string, details?: unknown): ReportVerdict {
    return { result: 'rejected', code, message, ...(details === undefined ? {} : { details }) };
  }

  async function decideReport(sender: ReportSender, packet: ReportPacket, requestId: string): Promise<ReportVerdict> {
    const wait = limiter === null ? 0 : limiter.take(sender.uuid);
    if (wait > 0) {
      return reject('rate_limited', `too many state reports from this device; retry in ${wait} s`, {
        retry_after_s: wait,
      });
    }
    if (packet.payload.length > options.maxPayloadBytes) {
      return reject('payload_too_large', `payload: at most ${options.maxPayloadBytes} bytes`);
    }
    let parsed: ReturnType<typeof parseStateReports>;
    try {
      let value: unknown;
      try {
        value = JSON.parse(packet.payload.toString('utf8'));
      } catch {
        return reject('invalid_json', 'payload: must be JSON');
      }
      assertStorableJson(value, 'payload');
      parsed = parseStateReports(value, sender.uuid, 'payload');
    } catch (error) {
      if (error instanceof HttpError) return reject(error.code, error.message, error.details);
      throw error;
    }
    const metadata: EventMetadata = {
      ip_address: sender.remoteAddress,
      user_agent: null,
      endpoint: MQTT_STATE_ENDPOINT,
      request_id: requestId,
      actor: { type: 'device', id: sender.uuid },
    };
    try {
      const outcome = await options.reports.submit(parsed.reports, {
        now: options.clock().toISOString(),
        metadata,
        source: 'mqtt',
      });
      return { result: 'accepted', outcome, ignored: parsed.ignored };
    } catch (error) {
      if (error instanceof DomainError) return reject(error.code, error.message, error.details);
      if (error instanceof HttpError && error.status < 500) return reject(error.code, error.message, error.details);
      throw error;
    }
  }

  async function handleNow(sender: ReportSender, packet: ReportPacket): Promise<ReportVerdict> {
    const started = performance.now();
    const requestId = reportRequestId(packet.payload, packet.messageId);
    const ids = packet.qos > 0 ? await recentOf(sender.uuid) : null;
    let verdict: ReportVerdict;
    if (ids?.includes(requestId)) verdict = { result: 'duplicate' };
    else {
      verdict = await decideReport(sender, packet, requestId);
      if (ids !== null) remember(ids, requestId);
    }
    if (verdict.result === 'rejected') {
      const { result: _result, ...reason } = verdict;
      options.publishRejected(sender.uuid, { ...reason, request_id: requestId }).catch((error) =>
        options.logError(`mqtt: publishing the rejection of a report from ${sender.uuid} failed`, error)
      );
    }
    options.onVerdict?.(sender, verdict, (performance.now() - started) / 1000);
    return verdict;
  }

  return {
    /** Handles one report; a device's reports are handled one at a time, in arrival order. */
    handle(sender: ReportSender, packet: ReportPacket): Promise<ReportVerdict> {
      const previous = chains.get(sender.uuid) ?? Promise.resolve();
      const run = previous.then(() => handleNow(sender, packet), () => handleNow(sender, packet));
      const settled = run.catch(() => undefined);
      chains.set(sender.uuid, settled);
      void settled.then(() => {
        if (chains.get(sender.uuid) === settled) chains.delete(sender.uuid);
      });
      return run;
    },
  };
}
