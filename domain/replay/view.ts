// The shape replay shows a device's state in (HTTP and `--json`): the same keys as the
// admin API's device view, plus whatever else the folded state carries, plus how it was computed.
import { type SecretMatch, secretMatches } from '../device/secrets.ts';
import type { RegisteredDevice } from '../device/state.ts';
import type { StateAt } from './history.ts';

/** A registered device's state at an instant, as JSON. */
export type StateView = Omit<RegisteredDevice, 'status'> & {
  uuid: string;
  at: string;
  in_sync: boolean;
  last_seen_at: string | null;
  replay: { events_folded: number; snapshot_version: number | null };
  /**
   * The target's secrets (as markers, README "Secrets") and whether the device reported the
   * same marker; present only when the target holds any.
   */
  secrets?: SecretMatch[];
};

/** The view of a replayed state; the caller has checked the device existed at `at`. */
export function stateView(uuid: string, result: StateAt & { state: RegisteredDevice }): StateView {
  const { status: _status, ...fields } = result.state;
  const secrets = fields.target === null ? [] : secretMatches(fields.target, fields.current);
  return {
    uuid,
    at: result.at,
    ...fields,
    in_sync: fields.drift.in_sync,
    last_seen_at: result.last_seen_at,
    replay: { events_folded: result.events_folded, snapshot_version: result.snapshot_version },
    ...(secrets.length === 0 ? {} : { secrets }),
  };
}
