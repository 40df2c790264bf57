// Recording fixtures from a real run: the devicetrail app on its own fresh database, served
// over HTTP on 127.0.0.1 with a scripted clock, driven by scenario scripts through the public
// API (and, where a scenario asks, the lifecycle sweepers the service runs on a timer). After
// every call that wrote events, the device's inline read model (what the live service folded)
// is saved as an expected state; at the end the events are exported with `replay export`.
import { Buffer } from 'node:buffer';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { createApp } from '../../app/http/create-app.ts';
import { createDeps } from '../../app/http/deps.ts';
import { createSecretHasher } from '../../infra/secrets/hasher.ts';
import { FOLD_VERSION } from '../../domain/device/evolve.ts';
import { createConnectivitySweeper } from '../../infra/devices/connectivity-sweeper.ts';
import { createReconciliationSweeper } from '../../infra/devices/reconciliation-sweeper.ts';
import { parseDuration } from '../../domain/replay/time.ts';
import type { Sidecar } from '../../replay/fixture-check.ts';

const stateRow = z.object({ state: z.unknown() });

/** One HTTP exchange's outcome. */
// deno-lint-ignore no-explicit-any -- recorded bodies are read as loose JSON
export type Exchange = { status: number; body: any };

/** What the live service held after a write. */
type Observation = { at: string; label: string; state: Record<string, unknown> };

/** The clock the service reads; only the scenario moves it. */
export type ScriptedClock = { now: () => string; advance: (by: string | number) => void };

/** The API as a scenario drives it. */
export type RecordingSession = {
  clock: ScriptedClock;
  adminToken: string;
  /** Sends a request at the current instant; a write is followed by an observation of `device`. */
  request: (
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; label?: string },
  ) => Promise<Exchange>;
  /**
   * Sends a request exactly as given (headers, a raw or gzip body), e.g. as the device agent
   * builds it; a write is followed by an observation, as for `request`.
   */
  send: (
    req: { method: string; path: string; headers: Record<string, string>; body?: Uint8Array | string },
    label?: string,
  ) => Promise<Exchange>;
  /** Runs the lifecycle sweepers once at the current instant (default timeouts), as the service would. */
  sweep: (label: string) => Promise<number>;
  /** Attaches named checks (dotted path → value) to the last observation. */
  check: (checks: Record<string, unknown>) => void;
  /** The sidecar for the device, built from the observations. */
  sidecar: (scenario: string, description: string) => Sidecar;
  close: () => Promise<void>;
};

const UA = 'devicetrail-fixture-recorder/1';
// the service's defaults (app/config.ts): CONNECTIVITY_TIMEOUT and RECONCILIATION_TIMEOUT
const CONNECTIVITY_TIMEOUT_MS = 15 * 60_000;
const RECONCILIATION_TIMEOUT_MS = 30 * 60_000;

/** Starts the app on `pool` with a scripted clock starting at `start`, recording `device`. */
export async function startRecording(pool: DatabasePool, device: string, start: string): Promise<RecordingSession> {
  let now = Date.parse(start);
  let lastRequestAt = -Infinity;
  const errors: unknown[] = [];
  const deps = createDeps(pool, {
    clock: () => new Date(now),
    // a fixed key: the markers of environment values (README "Secrets") are the same on every recording
    secrets: createSecretHasher(Buffer.alloc(32, 0x5e)),
    logError: (_m, e) => {
      errors.push(e);
    },
  });
  const server: Server = createServer(createApp(deps).callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const adminToken = (await deps.adminTokens.create('fixture-recorder')).token;
  const observations: Observation[] = [];
  const checks = new Map<number, Record<string, unknown>>();

  const clock: ScriptedClock = {
    now: () => new Date(now).toISOString(),
    advance(by) {
      const ms = typeof by === 'number' ? by : parseDuration(by);
      if (ms === null || ms <= 0) throw new Error(`clock.advance: bad duration ${String(by)}`);
      now += ms;
    },
  };

  /** Saves the device's read model after a call, when the call wrote events. */
  async function observe(label: string): Promise<void> {
    const row = await pool.maybeOne(sql.type(stateRow)`SELECT state FROM devices WHERE uuid = ${device}`);
    if (row === null) return;
    const state = row.state as Record<string, unknown>;
    const last = observations[observations.length - 1];
    if (last !== undefined && last.state['version'] === state['version']) return;
    observations.push({ at: clock.now(), label, state });
  }
  const sweeperOptions = {
    pool,
    store: deps.store,
    clock: deps.clock,
    intervalMs: 60_000,
    onError: (_m: string, e: unknown) => {
      errors.push(e);
    },
  };
  const sweepers = [
    createConnectivitySweeper({ ...sweeperOptions, timeoutMs: CONNECTIVITY_TIMEOUT_MS }),
    createReconciliationSweeper({ ...sweeperOptions, timeoutMs: RECONCILIATION_TIMEOUT_MS }),
  ];

  /** One request at its own instant, so "the state at the instant of a write" is well defined. */
  async function exchange(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: Uint8Array | string | undefined,
    label: string | undefined,
  ): Promise<Exchange> {
    if (now <= lastRequestAt) now = lastRequestAt + 1_000;
    lastRequestAt = now;
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { 'User-Agent': UA, ...headers },
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    const parsed = text === '' ? undefined : JSON.parse(text);
    if (errors.length > 0) throw new Error(`the service failed on ${method} ${path}: ${String(errors[0])}`);
    if (response.status >= 500) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    await observe(label ?? `after ${method} ${path} (${response.status})`);
    return { status: response.status, body: parsed };
  }

  return {
    clock,
    adminToken,
    request(method, path, options = {}) {
      const headers: Record<string, string> = {};
      if (options.token !== undefined) headers['Authorization'] = `Bearer ${options.token}`;
      if (options.body !== undefined) headers['Content-Type'] = 'application/json';
      return exchange(
        method,
        path,
        headers,
        options.body === undefined ? undefined : JSON.stringify(options.body),
        options.label,
      );
    },
    send(req, label) {
      return exchange(req.method, req.path, req.headers, req.body, label);
    },
    async sweep(label) {
      if (now <= lastRequestAt) now = lastRequestAt + 1_000;
      lastRequestAt = now;
      let written = 0;
      for (const sweeper of sweepers) written += await sweeper.runOnce();
      if (errors.length > 0) throw new Error(`a sweeper failed: ${String(errors[0])}`);
      await observe(label);
      return written;
    },
    check(named) {
      if (observations.length === 0) throw new Error('check: nothing observed yet');
      checks.set(observations.length - 1, { ...checks.get(observations.length - 1), ...named });
    },
    sidecar(scenario, description) {
      const expectations: Sidecar['expectations'] = [];
      const first = observations[0];
      if (first === undefined) throw new Error(`${scenario}: no observation recorded`);
      expectations.push({
        at: new Date(Date.parse(first.at) - 1).toISOString(),
        label: 'just before registration',
        registered: false,
      });
      observations.forEach((o, i) => {
        const named = checks.get(i);
        expectations.push({
          at: o.at,
          label: o.label,
          registered: true,
          state: o.state,
          ...(named === undefined ? {} : { checks: named }),
        });
        const next = observations[i + 1];
        if (next !== undefined && Date.parse(next.at) - Date.parse(o.at) > 1) {
          // between two writes nothing happened: the state is still the earlier one
          const mid = new Date(Math.floor((Date.parse(o.at) + Date.parse(next.at)) / 2)).toISOString();
          const drift = o.state['drift'] as { in_sync?: unknown } | undefined;
          const target = o.state['target'] as { version?: unknown } | null | undefined;
          expectations.push({
            at: mid,
            label: `between "${o.label}" and "${next.label}"`,
            registered: true,
            checks: {
              version: o.state['version'],
              is_active: o.state['is_active'],
              'target.version': target?.version ?? null,
              'drift.in_sync': drift?.in_sync ?? null,
              drift_since: o.state['drift_since'] ?? null,
            },
          });
        }
      });
      // drift intervals as the live service saw them: out of sync from drift_since until the write that synced it
      const intervals: { start: string; end: string | null }[] = [];
      let open: { start: string; end: string | null } | null = null;
      for (const o of observations) {
        const inSync = (o.state['drift'] as { in_sync: boolean }).in_sync;
        if (!inSync && open === null) {
          open = { start: String(o.state['drift_since']), end: null };
          intervals.push(open);
        } else if (inSync && open !== null) {
          open.end = o.at;
          open = null;
        }
      }
      return {
        scenario,
        description,
        device,
        recorded: {
          by: 'npm run fixtures:record (test/recording/record-fixtures.ts)',
          fold_version: FOLD_VERSION,
          observations: observations.length,
        },
        expectations,
        drift: { until: observations[observations.length - 1]!.at, intervals },
      };
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
