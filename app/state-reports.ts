// State reports, one path whatever the transport (issue #18): PATCH /api/v1/device/state and
// MQTT `iot/device/<uuid>/state` take the same body (keyed by the reporting device's uuid,
// app/http/device-reports.ts for each entry), write through the same group-commit batch
// writer and answer the same outcome. A report that changes nothing appends no event but is
// a contact; a disabled device's report is refused after its contact is recorded.
import type { DatabasePool } from 'slonik';
import { decide } from '../domain/device/decide.ts';
import { hashAppsSecrets, hashConfigSecrets } from '../domain/device/secrets.ts';
import { DomainError } from '../domain/errors.ts';
import type { EventMetadata } from '../domain/recorded-event.ts';
import { createDeviceBatchWriter, type DeviceBatchWriter } from '../infra/devices/batch-writer.ts';
import { recordDeviceContact, touchContact } from '../infra/devices/contact.ts';
import type { EventStore } from '../infra/event-store/event-store.ts';
import type { SecretHasher } from '../infra/secrets/hasher.ts';
import { createMetricsWriter, metricsSampleOf, type MetricsWriter } from '../infra/telemetry/metrics-series.ts';
import { type CanonicalReport, parseReport, toReportCommand } from './http/device-reports.ts';
import { HttpError } from './http/errors.ts';
import { UUID_PATTERN } from '../domain/ids.ts';

/** What a report did for each device: its version, whether it is in sync, events appended. */
export type ReportsOutcome = {
  events_written: number;
  devices: Record<string, { version: number; in_sync: boolean; events_written: number }>;
};

/**
 * A report body (`{"<uuid>": {...}}`) checked for `caller`: an object whose keys are uuids,
 * the caller's own only (403), once each (uuids compared in their canonical lower-case
 * spelling: case variants cannot turn one report into many events, issue #16 finding 2).
 * Each entry parsed by parseReport; the fields it ignored are returned. `root` names the body
 * in messages ("body", or "payload" over MQTT).
 */
export function parseStateReports(
  raw: unknown,
  caller: string,
  root = 'body',
): { reports: [string, CanonicalReport][]; ignored: string[] } {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new HttpError(400, 'invalid_request', `${root}: must be an object keyed by device uuid`);
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  if (entries.length === 0) {
    throw new HttpError(400, 'invalid_request', `${root}: must contain the reporting device's uuid as a key`);
  }
  const reports: [string, CanonicalReport][] = [];
  const ignored: string[] = [];
  const seen = new Map<string, string>();
  for (const [key, value] of entries) {
    // uuidSchema's rule, without a zod parse per report (issue #19)
    if (!UUID_PATTERN.test(key)) {
      throw new HttpError(400, 'invalid_request', `${root}.${key}: key must be a device uuid`);
    }
    const uuid = key.toLowerCase();
    if (uuid !== caller) {
      throw new HttpError(403, 'forbidden', `${root}.${key}: a device may only report its own state`);
    }
    const first = seen.get(uuid);
    if (first !== undefined) {
      throw new HttpError(
        400,
        'invalid_request',
        `${root}.${key}: the same device as ${root}.${first} (uuids are case-insensitive); send one report per device`,
      );
    }
    seen.set(uuid, key);
    const parsed = parseReport(value, `${root}.${key}`);
    ignored.push(...parsed.ignored);
    reports.push([uuid, parsed.report]);
  }
  return { reports, ignored };
}

/** A report with its services' environment values and secret config values hashed. */
export function hashReportSecrets(report: CanonicalReport, secrets: SecretHasher): CanonicalReport {
  const apps = report.apps === undefined ? undefined : hashAppsSecrets(report.apps, secrets.hash);
  const config = report.config === undefined ? undefined : hashConfigSecrets(report.config, secrets.hash);
  return apps === report.apps && config === report.config ? report : { ...report, apps, config };
}

/** Writes parsed reports: one group-commit batch writer per event store, shared by every transport. */
export type StateReports = {
  submit: (
    reports: readonly [string, CanonicalReport][],
    context: { now: string; metadata: EventMetadata; source: string },
  ) => Promise<ReportsOutcome>;
};

// Keyed by the (instrumented) event store rather than kept in AppDeps: the app instruments
// its store after the dependencies are built (app/http/create-app.ts), and a writer must append
// through the store that counts. The HTTP routes and the MQTT transport of one process get the
// same writer (one batch, one state cache); separate apps in tests get their own.
const writers = new WeakMap<EventStore, StateReports>();

/** The state-report writer of this pool and event store (created on first use). */
export function stateReportsFor(pool: DatabasePool, store: EventStore, secrets: SecretHasher): StateReports {
  let reports = writers.get(store);
  if (reports === undefined) {
    reports = createStateReports(
      pool,
      store,
      createDeviceBatchWriter(pool, store),
      createMetricsWriter(pool),
      secrets,
    );
    writers.set(store, reports);
  }
  return reports;
}

function createStateReports(
  pool: DatabasePool,
  store: EventStore,
  writer: DeviceBatchWriter,
  metrics: MetricsWriter,
  secrets: SecretHasher,
): StateReports {
  /** A disabled device's refused report still shows it is alive: record the contact, then refuse. */
  async function refusedIfInactive<T>(uuid: string, now: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DomainError && error.code === 'device_inactive') await touchContact(pool, uuid, now);
      throw error;
    }
  }

  return {
    async submit(reports, { now, metadata, source }) {
      const devices: ReportsOutcome['devices'] = {};
      let written = 0;
      for (const [uuid, parsed] of reports) {
        // secrets never enter the log (README "Secrets"): reported environment values and
        // secret config keys are compared and stored as markers
        const report = hashReportSecrets(parsed, secrets);
        // telemetry is not state (issue #15): an accepted report's metrics are a sample in the
        // series, committed before the answer: with the report's events when it appends any (one
        // statement), else by the metrics writer's group commit, with the report's contact
        const metricsSample = metricsSampleOf(report);
        const sample = metricsSample === null ? undefined : { ...metricsSample, device_uuid: uuid, reported_at: now };
        const outcome = await refusedIfInactive(
          uuid,
          now,
          () =>
            writer.submit(uuid, (state) => decide(toReportCommand(report, now), state), { metadata, source }, sample),
        );
        // an unchanged report appends nothing but is still a contact (and restores a device a sweeper just marked lost)
        const unchanged = outcome.events.length === 0;
        const lost = sample === undefined
          ? unchanged
          : outcome.sampleWritten !== true
          ? await metrics.submit(sample, unchanged)
          : unchanged
          ? outcome.contactLost // written with its contact by the batch writer
          : false;
        const contact = unchanged && lost !== false
          ? await recordDeviceContact(pool, store, uuid, now, metadata)
          : null;
        const events = outcome.events.length + (contact?.events.length ?? 0);
        written += events;
        const state = contact?.state ?? outcome.state;
        devices[uuid] = {
          version: state.version,
          in_sync: state.status === 'registered' ? state.drift.in_sync : false,
          events_written: events,
        };
      }
      return { events_written: written, devices };
    },
  };
}
