// The MQTT transport's metrics (issue #18), on the app's registry (app/observability/metrics.ts):
// connected devices, state reports by result, refusals (connect, publish, subscribe), the time
// from receiving a report to acknowledging it, and the time from a target change to its
// publication and to its sending to the device.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { fieldLabeler } from '../observability/metrics.ts';

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The transport's metrics. */
export type MqttMetrics = ReturnType<typeof createMqttMetrics>;

const registered = new WeakMap<Registry, MqttMetrics>();

/**
 * The registry's MQTT metrics, registered on first use (a transport started again in the same
 * process keeps counting into them); `connected` answers the gauge on each scrape (null: unknown).
 */
export function mqttMetricsFor(registry: Registry, connected: () => number | null): MqttMetrics {
  let metrics = registered.get(registry);
  if (metrics === undefined) {
    metrics = createMqttMetrics(registry);
    registered.set(registry, metrics);
  }
  metrics.connectedFrom(connected);
  return metrics;
}

function createMqttMetrics(registry: Registry) {
  let connected: () => number | null = () => null;
  new Gauge({
    name: 'devicetrail_mqtt_connected_clients',
    help:
      'Clients connected to the MQTT broker: devices of the embedded broker, or every client of an external one ($SYS/broker/clients/connected, devicetrail included)',
    registers: [registry],
    collect() {
      const n = connected();
      if (n !== null) this.set(n);
    },
  });
  const reports = new Counter({
    name: 'devicetrail_mqtt_reports_total',
    help: 'State reports received over MQTT by result (accepted, duplicate, rejected) and rejection code',
    labelNames: ['result', 'code'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'devicetrail_mqtt_refused_total',
    help: 'MQTT connections, publishes and subscriptions the embedded broker refused, by kind and reason',
    labelNames: ['kind', 'reason'] as const,
    registers: [registry],
  });
  const ignoredFields = new Counter({
    name: 'devicetrail_mqtt_ignored_fields_total',
    help: 'Fields of MQTT state reports devicetrail does not know: dropped, never stored (by field name)',
    labelNames: ['field'] as const,
    registers: [registry],
  });
  const fieldLabel = fieldLabeler();
  const ackSeconds = new Histogram({
    name: 'devicetrail_mqtt_report_ack_seconds',
    help: 'From receiving a state report to acknowledging it (after its events are committed), by result',
    labelNames: ['result'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  const targetSeconds = new Histogram({
    name: 'devicetrail_mqtt_target_seconds',
    help:
      'From a target change (its event) to its notice being published to the broker, and (embedded broker) to it being sent to the device, by stage',
    labelNames: ['stage'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  return {
    /** Where the connected gauge reads from (the running transport). */
    connectedFrom(source: () => number | null): void {
      connected = source;
    },
    report(
      result: 'accepted' | 'duplicate' | 'rejected',
      code: string,
      seconds: number,
      ignored: readonly string[],
    ): void {
      reports.inc({ result, code });
      ackSeconds.observe({ result }, seconds);
      for (const path of ignored) ignoredFields.inc({ field: fieldLabel(path) });
    },
    refused(kind: string, reason: string): void {
      refused.inc({ kind, reason });
    },
    target(stage: 'published' | 'sent', seconds: number): void {
      targetSeconds.observe({ stage }, Math.max(0, seconds));
    },
  };
}
