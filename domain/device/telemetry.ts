// Telemetry is not state (issue #15): which fields of a state report are metrics. They go to
// the device_metrics series; a report whose only changes are metrics appends no event, and a
// report that changes state carries the metrics it was sent with in its current_state.updated.
import { resourceFieldNames } from './events.ts';

/** System fields that are telemetry: `uptime` changes on every report. */
export const telemetrySystemFieldNames = ['uptime'] as const;

/** The gauges of a metrics sample: every resource field, and uptime. */
export const metricGaugeNames = [...resourceFieldNames, ...telemetrySystemFieldNames] as const;

/** One gauge's name. */
export type MetricGauge = (typeof metricGaugeNames)[number];

/** The device agent's tables, telemetry only: kept in the series, never in events or state. */
export const metricTableNames = ['top_processes', 'network_interfaces'] as const;

const telemetrySystem: ReadonlySet<string> = new Set(telemetrySystemFieldNames);

/** Whether a system field is telemetry (it does not make a report a state change). */
export const isTelemetrySystemField = (name: string): boolean => telemetrySystem.has(name);
