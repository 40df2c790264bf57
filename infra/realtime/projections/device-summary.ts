// The built-in `device_summary` projection: each device's state folded with the domain's
// `evolve`, keyed by uuid, summed up by fleet and device type (active/inactive, in sync/
// drifting) for GET /api/v1/fleet/summary.
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { deviceEventSchemas, parseDeviceEvent } from '../../../domain/device/events.ts';
import { jsonEqual } from '../../../domain/device/drift.ts';
import { evolve, FOLD_VERSION } from '../../../domain/device/evolve.ts';
import { type DeviceState, initialState } from '../../../domain/device/state.ts';
import { ProjectionBuilder, type ProjectionOptions } from '../projection-builder.ts';

/** The projection's name. */
export const DEVICE_SUMMARY = 'device_summary';

/** Creates the device_summary builder (options: database, polling, logging). */
export function createDeviceSummaryProjection(
  options: Omit<ProjectionOptions<DeviceState>, 'key' | 'initialState' | 'version'> = {},
): ProjectionBuilder<DeviceState> {
  const builder = new ProjectionBuilder<DeviceState>(DEVICE_SUMMARY, {
    ...options,
    key: (event) => (event.aggregate_type === 'device' ? event.aggregate_id : null),
    // a handler for every device event type: read whole device streams
    aggregateType: 'device',
    initialState,
    // the handler's source does not show evolve's: its version does
    version: `fold-${FOLD_VERSION}-summary-2`,
  });
  for (const type of Object.keys(deviceEventSchemas)) {
    builder.on(type, (event, state) => {
      // A report of only system fields and resources (most reports: cpu, memory…) cannot
      // change what the summary counts (fleet, type, active, in sync): leave the state as
      // is, which also spares the write. Everything else is folded with the domain's evolve.
      if (event.event_type === 'current_state.updated' && !changesSummary(event.data, state)) return undefined;
      return evolve(state, parseDeviceEvent({ type: event.event_type, data: event.data, timestamp: event.timestamp }));
    });
  }
  return builder;
}

/** Whether a current_state.updated event changes anything drift is computed from. */
function changesSummary(data: Record<string, unknown>, state: DeviceState): boolean {
  if (state.status !== 'registered' || state.current === null) return true;
  const current = state.current;
  return (data['apps'] !== undefined && !jsonEqual(data['apps'], current.apps)) ||
    (data['config'] !== undefined && !jsonEqual(data['config'], current.config)) ||
    (data['update_status'] !== undefined && data['update_status'] !== current.update_status);
}

const builders = new WeakMap<DatabasePool, ProjectionBuilder<DeviceState>>();

/** The one device_summary builder of a pool, shared by the HTTP route and the background job. */
export function deviceSummaryProjection(pool: DatabasePool): ProjectionBuilder<DeviceState> {
  let builder = builders.get(pool);
  if (builder === undefined) {
    // continuous mode under ingest load: one read per quarter second rather than one per commit;
    // 2,000 states as objects and 20,000 more as JSON text, so a fleet of 10,000 devices
    // reporting in turn is folded without reading its states back
    builder = createDeviceSummaryProjection({ pool, coalesceMs: 250, cacheStates: 2_000, coldCacheStates: 20_000 });
    builders.set(pool, builder);
  }
  return builder;
}

/** Counts for one group of devices. */
export type DeviceCounts = { total: number; active: number; inactive: number; in_sync: number; drifting: number };

/** The summary served at /fleet/summary. */
export type DeviceSummary = {
  totals: DeviceCounts;
  fleets: (DeviceCounts & { fleet_id: string; device_types: (DeviceCounts & { device_type: string })[] })[];
  device_types: (DeviceCounts & { device_type: string })[];
};

const groupRow = z.object({
  fleet_id: z.string(),
  device_type: z.string(),
  total: z.number(),
  active: z.number(),
  in_sync: z.number(),
});

const counts = (total: number, active: number, inSync: number): DeviceCounts => ({
  total,
  active,
  inactive: total - active,
  in_sync: inSync,
  drifting: total - inSync,
});

const add = (a: DeviceCounts, b: DeviceCounts): DeviceCounts =>
  counts(a.total + b.total, a.active + b.active, a.in_sync + b.in_sync);

/** Sums the projection's device states by fleet and type (optionally one fleet). */
export async function readDeviceSummary(
  connection: CommonQueryMethods,
  definition: string,
  fleetId?: string,
): Promise<DeviceSummary> {
  const fleet = fleetId === undefined ? sql.fragment`` : sql.fragment`AND state->>'fleet_id' = ${fleetId}`;
  const rows = await connection.any(sql.type(groupRow)`
    SELECT state->>'fleet_id' AS fleet_id, state->>'device_type' AS device_type,
           count(*)::int8 AS total,
           count(*) FILTER (WHERE (state->>'is_active')::boolean)::int8 AS active,
           count(*) FILTER (WHERE (state->'drift'->>'in_sync')::boolean)::int8 AS in_sync
      FROM projection_states
     WHERE projection = ${DEVICE_SUMMARY} AND definition = ${definition} AND state->>'status' = 'registered' ${fleet}
     GROUP BY 1, 2 ORDER BY 1, 2`);
  const zero = counts(0, 0, 0);
  let totals = zero;
  const fleets = new Map<string, DeviceSummary['fleets'][number]>();
  const types = new Map<string, DeviceCounts>();
  for (const row of rows) {
    const c = counts(row.total, row.active, row.in_sync);
    totals = add(totals, c);
    const f = fleets.get(row.fleet_id) ?? { fleet_id: row.fleet_id, ...zero, device_types: [] };
    fleets.set(row.fleet_id, {
      ...f,
      ...add(f, c),
      device_types: [...f.device_types, { device_type: row.device_type, ...c }],
    });
    types.set(row.device_type, add(types.get(row.device_type) ?? zero, c));
  }
  return {
    totals,
    fleets: [...fleets.values()],
    device_types: [...types].map(([device_type, c]) => ({ device_type, ...c })),
  };
}
