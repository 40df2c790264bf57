// The device agent's telemetry tables in a state report (issue #15): `top_processes` and
// `network_interfaces`, as its system-metrics module builds them. Known fields, so they are
// typed strictly (a wrong type is a 400 naming it) and their unknown sub-fields dropped and
// named like any other; they go to the device_metrics series only, never to an event.
import { z } from 'zod';

const text = (max: number) => z.string().max(max).nullable().optional();
const finite = z.number().finite().nullable().optional();

/** One row of `top_processes`. */
export const topProcessInput = z.object({
  pid: z.number().int().nonnegative().nullable().optional(),
  name: text(256),
  cpu: finite,
  mem: finite,
  command: text(1024),
});

/** One row of `network_interfaces`. */
export const networkInterfaceInput = z.object({
  name: text(128),
  ip4: text(64),
  ip6: text(128),
  mac: text(64),
  type: text(64),
  default: z.boolean().nullable().optional(),
  virtual: z.boolean().nullable().optional(),
  operstate: text(64),
  ssid: text(128),
  signalLevel: finite,
});

/** The tables' fields of a report entry (README "Limits": 100 processes, 64 interfaces). */
export const metricTablesShape = {
  top_processes: z.array(topProcessInput).max(100).optional(),
  network_interfaces: z.array(networkInterfaceInput).max(64).optional(),
};
