// The timeline page's device logs (issue #15): what the device logged around the start of each
// of its latest drift intervals, read from device_logs for the CLI (`replay timeline --logs`)
// and the API (`GET /devices/:uuid/timeline?logs=`) alike.
import type { CommonQueryMethods } from 'slonik';
import type { DriftReport } from '../../domain/replay/drift.ts';
import { readLogsAround } from '../../infra/telemetry/device-logs.ts';
import { LOG_LINES_NEAR, logInstants, type TimelineInput } from './timeline.ts';

/** The page's `logs`: the lines within `windowMs` of each drift start the page shows. */
export async function timelineLogs(
  connection: CommonQueryMethods,
  uuid: string,
  drift: DriftReport,
  windowMs: number,
): Promise<NonNullable<TimelineInput['logs']>> {
  const around = [];
  for (const instant of logInstants(drift)) {
    around.push({ ...instant, ...await readLogsAround(connection, uuid, instant.at, windowMs, LOG_LINES_NEAR) });
  }
  return { windowMs, around };
}
