// Prometheus metrics (prom-client): HTTP requests by route and status with latency
// histograms, events appended by type, append batch sizes, listener lag, pool usage and
// partition count. One registry per app; listeners report lag through `registerLagGauge`.
import type { Context, Next } from 'koa';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import type { EventStore } from '../../infra/event-store/event-store.ts';
import type { StoredEvent } from '../../domain/recorded-event.ts';
import { utcDay } from '../../infra/event-store/partitions.ts';
import { routeOf } from './logger.ts';

/** How far behind a listener is: events not yet handled and the age of the oldest. */
export type LagReading = { events: number; seconds?: number | null };

type LagSource = () => LagReading | number | Promise<LagReading | number>;

const lagSources = new Map<string, LagSource>();

/**
 * Reports a listener's lag on every scrape (`devicetrail_listener_lag_events` and
 * `_seconds`, label `listener`). `read` returns events behind (a number) or
 * `{events, seconds}`. Returns a function that unregisters it; call it when the listener stops.
 */
export function registerLagGauge(listener: string, read: LagSource): () => void {
  lagSources.set(listener, read);
  return () => {
    if (lagSources.get(listener) === read) lagSources.delete(listener);
  };
}

/** Distinct field names devicetrail_ignored_fields_total labels; later ones count as "other". */
const MAX_FIELD_LABELS = 200;

/**
 * Turns an ignored field's path into a label: its last segment. Devices choose the names, so
 * the label set is bounded (MAX_FIELD_LABELS distinct names, then "other").
 */
export function fieldLabeler(): (path: string) => string {
  const fieldLabels = new Set<string>();
  return (path) => {
    const name = path.slice(path.lastIndexOf('.') + 1);
    if (!/^[A-Za-z_][\w-]{0,63}$/.test(name)) return 'other';
    if (fieldLabels.has(name)) return name;
    if (fieldLabels.size >= MAX_FIELD_LABELS) return 'other';
    fieldLabels.add(name);
    return name;
  };
}

/** The metrics of one app. */
export type Metrics = ReturnType<typeof createMetrics>;

const partitionRow = z.object({ name: z.string() });

/** Days after today, in a row, that already have an events partition. */
export function partitionDaysAhead(names: readonly string[], now: Date): number {
  const have = new Set(names);
  let days = 0;
  for (let i = 1; i <= 3660; i += 1) {
    if (!have.has(`events_${utcDay(now.getTime() + i * 86_400_000).replaceAll('-', '')}`)) break;
    days = i;
  }
  return days;
}

/** Creates a registry with every devicetrail metric; `pool` feeds the pool and partition gauges. */
export function createMetrics(
  options: {
    pool?: DatabasePool;
    clock?: () => Date;
    defaultMetrics?: boolean;
    /**
     * In a cluster worker (WORKERS > 1): its index, counted per request in
     * devicetrail_worker_http_requests_total, and how /metrics gathers every worker's metrics
     * (app/cluster/worker-ipc.ts asks the primary).
     */
    worker?: { index: number; exposition: () => Promise<string> };
  } = {},
) {
  const registry = new Registry();
  const clock = options.clock ?? (() => new Date());
  if (options.defaultMetrics !== false) {
    try {
      collectDefaultMetrics({ register: registry, prefix: 'devicetrail_' });
    } catch {
      // a runtime without some process statistics (e.g. Deno): the devicetrail metrics still work
    }
  }

  const requests = new Counter({
    name: 'devicetrail_http_requests_total',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'devicetrail_http_request_duration_seconds',
    help: 'HTTP request latency by method, route pattern and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: 'devicetrail_http_requests_in_flight',
    help: 'HTTP requests being served',
    registers: [registry],
  });
  const eventsAppended = new Counter({
    name: 'devicetrail_events_appended_total',
    help: 'Events appended to the log by event type and aggregate type',
    labelNames: ['event_type', 'aggregate_type'] as const,
    registers: [registry],
  });
  const ignoredFields = new Counter({
    name: 'devicetrail_ignored_fields_total',
    help: 'Fields of device-facing bodies devicetrail does not know: dropped, never stored (by route and field name)',
    labelNames: ['route', 'field'] as const,
    registers: [registry],
  });
  const fieldLabel = fieldLabeler();
  // in a cluster, which worker (and process) answered: the primary sums the other counters
  const workerRequests = options.worker === undefined ? null : new Counter({
    name: 'devicetrail_worker_http_requests_total',
    help: 'HTTP requests answered by each worker process (WORKERS > 1)',
    labelNames: ['worker', 'pid'] as const,
    registers: [registry],
  });
  const workerLabels = { worker: String(options.worker?.index ?? 0), pid: String(process.pid) };
  const batchSize = new Histogram({
    name: 'devicetrail_append_batch_size',
    help: 'Events per append (one append is one compare-and-set on a stream)',
    buckets: [1, 2, 3, 5, 10, 20, 50, 100, 500, 1000],
    registers: [registry],
  });
  new Gauge({
    name: 'devicetrail_listener_lag_events',
    help: 'Events a listener has not handled yet',
    labelNames: ['listener'] as const,
    registers: [registry],
    // across cluster workers: the lag is the database's, the same wherever it is read
    aggregator: 'max',
    async collect() {
      this.reset();
      for (const [listener, reading] of await readLag()) this.set({ listener }, reading.events);
    },
  });
  new Gauge({
    name: 'devicetrail_listener_lag_seconds',
    help: 'Age of the oldest event a listener has not handled yet (0 when caught up)',
    labelNames: ['listener'] as const,
    registers: [registry],
    aggregator: 'max',
    async collect() {
      this.reset();
      for (const [listener, reading] of await readLag()) {
        if (typeof reading.seconds === 'number') this.set({ listener }, reading.seconds);
      }
    },
  });
  const pool = options.pool;
  if (pool !== undefined) {
    new Gauge({
      name: 'devicetrail_db_pool_connections',
      help: 'Database pool connections by state (acquired, idle, max) and clients waiting for one',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const s = pool.state();
        this.set({ state: 'acquired' }, s.acquiredConnections);
        this.set({ state: 'idle' }, s.idleConnections);
        this.set({ state: 'waiting' }, s.waitingClients);
        this.set({ state: 'max' }, pool.configuration.maximumPoolSize ?? 0);
      },
    });
    const partitionNames = () =>
      pool.anyFirst(sql.type(partitionRow)`
      SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'events'::regclass`);
    new Gauge({
      name: 'devicetrail_events_partitions',
      help: 'Day partitions of the events table',
      registers: [registry],
      aggregator: 'max',
      async collect() {
        // database unavailable: keep the last value; /readyz reports the outage
        await partitionNames().then((names) => this.set(names.length), () => undefined);
      },
    });
    new Gauge({
      name: 'devicetrail_events_partition_days_ahead',
      help: 'Consecutive days after today that already have an events partition',
      registers: [registry],
      aggregator: 'max',
      async collect() {
        await partitionNames().then((names) => this.set(partitionDaysAhead(names, clock())), () => undefined);
      },
    });
  }

  async function readLag(): Promise<[string, LagReading][]> {
    const out: [string, LagReading][] = [];
    for (const [listener, read] of lagSources) {
      try {
        const value = await read();
        out.push([listener, typeof value === 'number' ? { events: value } : value]);
      } catch {
        // a listener that cannot tell its lag right now is left out of this scrape
      }
    }
    return out;
  }

  return {
    registry,
    /** The text /metrics serves: this registry, or in a cluster worker every worker's, summed. */
    exposition: options.worker?.exposition ?? (() => registry.metrics()),
    /** Counts stored events (called after each successful append). */
    recordAppend(events: readonly Pick<StoredEvent, 'event_type' | 'aggregate_type'>[]): void {
      if (events.length === 0) return;
      batchSize.observe(events.length);
      for (const e of events) eventsAppended.inc({ event_type: e.event_type, aggregate_type: e.aggregate_type });
    },
    /** Koa middleware: counts and times every request by its route pattern. */
    measureRequests() {
      return async function measureRequest(ctx: Context, next: Next): Promise<void> {
        const stop = duration.startTimer();
        inFlight.inc();
        try {
          await next();
        } finally {
          inFlight.dec();
          const labels = { method: ctx.method, route: routeOf(ctx), status: String(ctx.status) };
          stop(labels);
          requests.inc(labels);
          workerRequests?.inc(workerLabels);
          const ignored = ctx.state['ignoredFields'] as string[] | undefined;
          for (const path of ignored ?? []) ignoredFields.inc({ route: labels.route, field: fieldLabel(path) });
        }
      };
    },
  };
}

const instrumented = new WeakMap<EventStore, Pick<Metrics, 'recordAppend'>>();

/**
 * The event store with appends counted (idempotent: a store already counting into
 * `metrics` is returned as is). Counted when the append statement succeeds, so an append
 * whose transaction a later step rolls back (rare: e.g. a 409 for a reused device key)
 * is counted too.
 */
export function instrumentStore(store: EventStore, metrics: Pick<Metrics, 'recordAppend'>): EventStore {
  if (instrumented.get(store) === metrics) return store;
  const counted: EventStore = {
    ...store,
    async append(...args: Parameters<EventStore['append']>) {
      const stored = await store.append(...args);
      metrics.recordAppend(stored);
      return stored;
    },
    recordAppended(events) {
      metrics.recordAppend(events);
    },
  };
  instrumented.set(counted, metrics);
  return counted;
}
