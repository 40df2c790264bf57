// The device_metrics series (issue #15, telemetry is not state): a device's metrics samples,
// written by group commit, read back downsampled. Every report that carries a metric is a
// sample, whether or not it also changed state (and appended an event).
import { setImmediate } from 'node:timers';
import {
  type CommonQueryMethods,
  type DatabasePool,
  type FragmentSqlToken,
  type IdentifierSqlToken,
  sql,
} from 'slonik';
import { z } from 'zod';
import { type MetricGauge, metricGaugeNames, metricTableNames } from '../../domain/device/telemetry.ts';
import { touchContacts } from '../devices/contact.ts';
import { createTelemetryPartitionCache, type TelemetryPartitionCache } from './partitions.ts';

/** One sample: the gauges a report carried (null: the device sent null) and the agent's tables. */
export type MetricsSample = Partial<Record<MetricGauge, number | null>> & {
  top_processes?: unknown[] | undefined;
  network_interfaces?: unknown[] | undefined;
};

/** A sample with its device and the server's time of the report. */
export type MetricsRow = MetricsSample & { device_uuid: string; reported_at: string };

/**
 * The metrics a validated report entry carries (its gauges and tables, by name), or null when
 * it carries none: such a report adds no sample.
 */
export function metricsSampleOf(report: Record<string, unknown>): MetricsSample | null {
  let sample: MetricsSample | null = null;
  for (const name of metricGaugeNames) {
    const value = report[name];
    if (value === undefined) continue;
    (sample ??= {})[name] = value as number | null;
  }
  for (const name of metricTableNames) {
    const value = report[name];
    if (Array.isArray(value)) (sample ??= {})[name] = value;
  }
  return sample;
}

/** Options; the defaults suit the API process. */
export type MetricsWriterOptions = {
  /** Most samples in one INSERT. */
  maxBatch?: number;
  /** INSERTs running at once (each on its own connection). */
  maxInFlight?: number;
};

/**
 * The writer: `submit` resolves once the sample is committed. With `contact`, the device's
 * contact (last_seen_at, infra/devices/contact.ts) is recorded in the same statement, and the
 * answer says whether the device is marked lost (null: no such device; undefined without).
 */
export type MetricsWriter = { submit: (row: MetricsRow, contact?: boolean) => Promise<boolean | null | undefined> };

type Job = {
  row: MetricsRow;
  contact: boolean;
  resolve: (lost: boolean | null | undefined) => void;
  reject: (error: unknown) => void;
};

const columns = sql.fragment`device_uuid, reported_at, cpu_usage, cpu_temp, memory_usage, memory_total,
  storage_usage, storage_total, temperature, uptime, top_processes, network_interfaces`;

/**
 * Group commit for metrics samples: every sample submitted while a batch is being written
 * waits for the next turn of the event loop and joins one INSERT (unpacked from one JSON
 * parameter by jsonb_to_recordset), so PostgreSQL commits many samples at once. A sample
 * waits at most for the batches already in flight; `submit` resolves after its commit, so an
 * answer that says the metrics are stored is never given before they are. The contacts of
 * reports that appended no event (most of a fleet's: only metrics changed) ride in the same
 * statement, instead of one UPDATE and one commit each.
 */
export function createMetricsWriter(pool: DatabasePool, options: MetricsWriterOptions = {}): MetricsWriter {
  const maxBatch = options.maxBatch ?? 1_000;
  const maxInFlight = options.maxInFlight ?? 2;
  const partitions = createTelemetryPartitionCache('device_metrics');
  const queue: Job[] = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      while (inFlight < maxInFlight && queue.length > 0) {
        const batch = queue.splice(0, maxBatch);
        inFlight += 1;
        void write(pool, partitions, batch).finally(() => {
          inFlight -= 1;
          if (queue.length > 0) schedule();
        });
      }
    });
  }

  return {
    submit(row, contact = false) {
      return new Promise((resolve, reject) => {
        queue.push({ row, contact, resolve, reject });
        schedule();
      });
    },
  };
}

async function write(pool: DatabasePool, partitions: TelemetryPartitionCache, batch: Job[]): Promise<void> {
  try {
    await partitions.ensure(pool, batch.map((job) => job.row.reported_at));
    const contacts = batch.filter((job) => job.contact).map((job) => ({
      uuid: job.row.device_uuid,
      at: job.row.reported_at,
    }));
    const lost = await insertMetrics(pool, batch.map((job) => job.row), contacts);
    for (const job of batch) job.resolve(job.contact ? lost.get(job.row.device_uuid) ?? null : undefined);
  } catch (error) {
    for (const job of batch) job.reject(error);
  }
}

const touchedRow = z.object({ uuid: z.string(), connection_lost: z.boolean() });

/** The INSERT of samples, as a statement or a write joined to another (`where` filters the rows). */
function insertFragment(rows: readonly MetricsRow[], where = sql.fragment``): FragmentSqlToken {
  return sql.fragment`
    INSERT INTO device_metrics (${columns})
    SELECT ${columns} FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      AS m(device_uuid text, reported_at timestamptz, cpu_usage float8, cpu_temp float8, memory_usage float8,
           memory_total float8, storage_usage float8, storage_total float8, temperature float8, uptime float8,
           top_processes jsonb, network_interfaces jsonb)
    ${where}`;
}

/**
 * Samples as a read-model write of an event append (the batch writer's, see appendStatement):
 * a report that appends events stores its sample in the same statement and commit. Only the
 * samples of devices whose stream that append moved are inserted.
 */
export function metricsWrite(rows: readonly MetricsRow[]): (appended: IdentifierSqlToken) => FragmentSqlToken {
  return (appended) =>
    insertFragment(
      rows,
      sql.fragment`WHERE m.device_uuid IN (SELECT aggregate_id FROM ${appended} WHERE aggregate_type = 'device')`,
    );
}

/**
 * Samples of reports the batch writer decided, from its memory of each device, change nothing
 * but metrics (issue #15): each is inserted, and its report's contact recorded, only if the
 * device's stream is still at `expected_version` (then that memory was the device's state, and
 * "nothing changed" is the right answer); one statement for the batch, no read before it.
 * Returns, per device whose head matched, whether it is marked lost; the others wrote nothing.
 */
export async function insertSamplesAtHeads(
  connection: CommonQueryMethods,
  rows: readonly (MetricsRow & { expected_version: number })[],
): Promise<Map<string, boolean>> {
  if (rows.length === 0) return new Map();
  const touched = await connection.any(sql.type(touchedRow)`
    WITH input AS (
      -- the LIMIT gives the planner the row count: guessing 100, it scanned every stream per batch
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        AS m(device_uuid text, reported_at timestamptz, cpu_usage float8, cpu_temp float8, memory_usage float8,
             memory_total float8, storage_usage float8, storage_total float8, temperature float8, uptime float8,
             top_processes jsonb, network_interfaces jsonb, expected_version int8)
       LIMIT ${rows.length}
    ),
    at_head AS (
      SELECT m.* FROM input m
        JOIN streams s ON s.aggregate_type = 'device' AND s.aggregate_id = m.device_uuid
                      AND s.version = m.expected_version
    ),
    inserted AS (INSERT INTO device_metrics (${columns}) SELECT ${columns} FROM at_head),
    contacts AS (SELECT device_uuid AS uuid, reported_at AS at FROM at_head),
    touched AS (${touchContacts(sql.identifier(['contacts']))})
    SELECT uuid, connection_lost FROM touched`);
  return new Map(touched.map((row) => [row.uuid, row.connection_lost]));
}

/**
 * Inserts samples in one statement (their days' partitions must exist), recording `contacts`
 * in it; returns, per device touched, whether it is marked lost.
 */
export async function insertMetrics(
  connection: CommonQueryMethods,
  rows: readonly MetricsRow[],
  contacts: readonly { uuid: string; at: string }[] = [],
): Promise<Map<string, boolean>> {
  if (rows.length === 0) return new Map();
  const insert = insertFragment(rows);
  if (contacts.length === 0) {
    await connection.query(sql.unsafe`${insert}`);
    return new Map();
  }
  const touched = await connection.any(sql.type(touchedRow)`
    WITH inserted AS (${insert}), touched AS (${touchContacts(contacts)})
    SELECT uuid, connection_lost FROM touched`);
  return new Map(touched.map((row) => [row.uuid, row.connection_lost]));
}

/** One gauge over a bucket: mean, least and greatest of its samples (null: no sample had it). */
export type GaugeStats = { avg: number; min: number; max: number } | null;

/** One bucket of a downsampled series: its start, how many samples fell in it, each gauge's stats. */
export type MetricsPoint = { t: string; samples: number } & Record<MetricGauge, GaugeStats>;

/** The latest sample of a device, whole (with its tables). */
export type LatestSample = { reported_at: string } & Record<MetricGauge, number | null> & {
  top_processes: unknown[] | null;
  network_interfaces: unknown[] | null;
};

const gaugeSelect = sql.join(
  metricGaugeNames.map((name) => {
    const column = sql.identifier([name]);
    // averaged as numeric: a float8 sum of reported values near its largest (1e308, a valid
    // finite number) overflows, a 500 (found by the fuzz); the mean itself always fits
    return sql.fragment`avg(${column}::numeric)::float8 AS ${sql.identifier([`${name}_avg`])},
      min(${column}) AS ${sql.identifier([`${name}_min`])}, max(${column}) AS ${sql.identifier([`${name}_max`])}`;
  }),
  sql.fragment`, `,
);

const bucketRow = z.object({ t: z.string(), samples: z.number() }).catchall(z.number().nullable().or(z.string()));

const latestRow = z.object({
  reported_at: z.string(),
  top_processes: z.array(z.unknown()).nullable(),
  network_interfaces: z.array(z.unknown()).nullable(),
}).catchall(z.number().nullable());

/**
 * A device's series over [since, until], downsampled into buckets of `stepMs` starting at
 * `since` (date_bin): per bucket, the number of samples and each gauge's mean, least and
 * greatest. Buckets without a sample are left out.
 */
export async function readMetricsSeries(
  connection: CommonQueryMethods,
  uuid: string,
  range: { since: string; until: string; stepMs: number },
): Promise<MetricsPoint[]> {
  const rows = await connection.any(sql.type(bucketRow)`
    SELECT date_bin(make_interval(secs => ${range.stepMs / 1000}), reported_at, ${range.since}::timestamptz) AS t,
           count(*)::int AS samples, ${gaugeSelect}
      FROM device_metrics
     WHERE device_uuid = ${uuid} AND reported_at >= ${range.since}::timestamptz AND reported_at <= ${range.until}::timestamptz
     GROUP BY 1 ORDER BY 1`);
  return rows.map((row) => {
    const point: Record<string, unknown> = { t: row.t, samples: row.samples };
    for (const name of metricGaugeNames) {
      const avg = row[`${name}_avg`];
      point[name] = avg === null || avg === undefined
        ? null
        : { avg: Number(avg), min: Number(row[`${name}_min`]), max: Number(row[`${name}_max`]) };
    }
    return point as MetricsPoint;
  });
}

/** A device's latest sample (at or before `until` when given), or null. */
export async function latestMetrics(
  connection: CommonQueryMethods,
  uuid: string,
  until?: string,
): Promise<LatestSample | null> {
  const bound = until === undefined ? sql.fragment`` : sql.fragment`AND reported_at <= ${until}::timestamptz`;
  const row = await connection.maybeOne(sql.type(latestRow)`
    SELECT reported_at, ${sql.join(metricGaugeNames.map((name) => sql.identifier([name])), sql.fragment`, `)},
           top_processes, network_interfaces
      FROM device_metrics WHERE device_uuid = ${uuid} ${bound}
     ORDER BY reported_at DESC LIMIT 1`);
  return row as LatestSample | null;
}
