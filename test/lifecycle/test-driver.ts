// Drives a scenario through a test app's HTTP API with a settable clock, and runs the
// sweepers with the same clock.
import { sql } from 'slonik';
import { z } from 'zod';
import { createConnectivitySweeper } from '../../infra/devices/connectivity-sweeper.ts';
import { type StoredEvent, storedEventRow } from '../../domain/recorded-event.ts';
import { createReconciliationSweeper } from '../../infra/devices/reconciliation-sweeper.ts';
import type { Sweeper } from '../../infra/devices/sweeper.ts';
import { startTestApp, type TestApp, type TestResponse } from '../helpers/app.ts';
import { SCENARIO_TIMEOUTS, type ScenarioDriver } from './lifecycle-scenario.ts';

/** A settable clock for the app and its sweepers. */
export type TestClock = { now: Date; read: () => Date; set: (at: Date) => void };

/** A clock that stays where it is put. */
export function testClock(start: Date): TestClock {
  const clock: TestClock = {
    now: start,
    read: () => clock.now,
    set: (at) => {
      clock.now = at;
    },
  };
  return clock;
}

/** A test app with a clock, both sweepers and a device driver. */
export async function startLifecycleApp(start: Date, timeouts = SCENARIO_TIMEOUTS) {
  const clock = testClock(start);
  const app = await startTestApp({ clock: clock.read });
  const sweeperErrors: unknown[] = [];
  const options = {
    pool: app.db.pool,
    clock: clock.read,
    intervalMs: 60_000,
    onError: (_m: string, e: unknown) => {
      sweeperErrors.push(e);
    },
  };
  const sweepers: Sweeper[] = [
    createReconciliationSweeper({ ...options, timeoutMs: timeouts.reconciliationMs }),
    createConnectivitySweeper({ ...options, timeoutMs: timeouts.connectivityMs }),
  ];
  return { app, clock, sweepers, sweeperErrors };
}

/** Fails loudly on an unexpected status. */
export function expectStatus(response: TestResponse, status: number, what: string): TestResponse {
  if (response.status !== status) {
    throw new Error(`${what}: expected ${status}, got ${response.status} ${response.text}`);
  }
  return response;
}

/** A driver for one device of the app (registered by the `register` step). */
export async function deviceDriver(
  app: TestApp,
  clock: TestClock,
  sweepers: readonly Sweeper[],
  uuid = crypto.randomUUID(),
) {
  const { key: provisioningKey } = await app.createProvisioningKey();
  const deviceKey = `device-key-${uuid}`;
  const driver: ScenarioDriver = {
    setTime: clock.set,
    async register() {
      expectStatus(
        (await app.registerDevice(provisioningKey, { uuid, deviceApiKey: deviceKey })).response,
        201,
        'register',
      );
    },
    async setTarget(body) {
      expectStatus(
        await app.request('POST', `/api/v1/devices/${uuid}/target-state`, { token: app.adminToken, body }),
        200,
        'set target',
      );
    },
    async poll() {
      const response = await app.request('GET', `/api/v1/device/${uuid}/target-state`, { token: deviceKey });
      if (response.status !== 200 && response.status !== 304) expectStatus(response, 200, 'poll');
    },
    async report(report) {
      expectStatus(
        await app.request('PATCH', '/api/v1/device/state', { token: deviceKey, body: { [uuid]: report } }),
        200,
        'report',
      );
    },
    async deviceEvents(body) {
      expectStatus(
        await app.request('POST', '/api/v1/device/events', { token: deviceKey, body }),
        201,
        'device events',
      );
    },
    async setActive(body) {
      expectStatus(
        await app.request('PATCH', `/api/v1/devices/${uuid}/active`, { token: app.adminToken, body }),
        200,
        'set active',
      );
    },
    async sweep() {
      for (const sweeper of sweepers) await sweeper.runOnce();
    },
  };
  return { uuid, deviceKey, provisioningKey, driver };
}

/** A device's events in version order, straight from the table. */
export async function deviceEvents(app: TestApp, uuid: string): Promise<readonly StoredEvent[]> {
  return app.db.pool.any(sql.type(storedEventRow)`
    SELECT event_id, event_type, aggregate_type, aggregate_id, aggregate_version, global_position,
           transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash
      FROM events WHERE aggregate_type = 'device' AND aggregate_id = ${uuid} ORDER BY aggregate_version`);
}

/** How many events of a type a device has. */
export async function countEvents(app: TestApp, uuid: string, type: string): Promise<number> {
  return app.db.pool.oneFirst(sql.type(z.object({ n: z.number() }))`
    SELECT count(*)::int AS n FROM events WHERE aggregate_id = ${uuid} AND event_type = ${type}`);
}
