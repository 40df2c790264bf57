// Long, valid device histories for the snapshot property test and the replay benchmark:
// commands chosen by a seeded random walk, turned into events by the domain's `decide`
// (so every event is one the API could have written), appended by the real event store.
import { type CommonQueryMethods, type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { decide, type DeviceCommand } from '../domain/device/decide.ts';
import { evolve } from '../domain/device/evolve.ts';
import type { DeviceEvent, TargetState } from '../domain/device/events.ts';
import { type DeviceState, initialState } from '../domain/device/state.ts';
import { DomainError } from '../domain/errors.ts';
import { upsertDevice } from '../infra/devices/device-store.ts';
import {
  type EventStore,
  headAfter,
  type NewEvent,
  newStreamHead,
  type PreparedEvent,
  prepareEvents,
} from '../infra/event-store/event-store.ts';
import { toDeviceEvent } from '../domain/replay/history.ts';
import type { Actor } from '../domain/recorded-event.ts';

/** A deterministic PRNG (mulberry32) in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** An event with who caused it. */
export type GeneratedEvent = DeviceEvent & { actor: Actor };

/** Options: how many events, over which span, and whether some timestamps go backwards. */
export type HistoryOptions = {
  uuid: string;
  count: number;
  start: string;
  spanMs: number;
  seed: number;
  /** Probability that a command's clock lies up to `jitterMs` before the previous one's. */
  outOfOrder?: number;
  jitterMs?: number;
  fleet?: string;
};

function randomTarget(rng: () => number): TargetState {
  const apps: TargetState['apps'] = {};
  const count = 1 + Math.floor(rng() * 3);
  for (let i = 0; i < count; i += 1) {
    const id = String(1000 + Math.floor(rng() * 6) * 1000);
    const services = ['main', 'sidecar'].slice(0, 1 + Math.floor(rng() * 2)).map((name) => ({
      serviceName: name,
      image: `registry.example/${id}-${name}:${1 + Math.floor(rng() * 4)}`,
    }));
    apps[id] = { appId: Number(id), appName: `app-${id}`, services };
  }
  return { apps, config: rng() < 0.5 ? {} : { LOG_LEVEL: rng() < 0.5 ? 'info' : 'debug' } };
}

function reportFor(state: DeviceState, rng: () => number) {
  const target = state.status === 'registered' ? state.target : null;
  const roll = rng();
  const apps: Record<string, { services: Record<string, Record<string, unknown>> }> = {};
  for (const [id, app] of Object.entries(target?.apps ?? {})) {
    const services: Record<string, Record<string, unknown>> = {};
    for (const s of app.services ?? []) {
      if (roll < 0.75) {
        services[s.serviceName] = { status: 'Running', image: s.image, containerId: `c-${id}-${s.serviceName}` };
      } else if (roll < 0.87) {
        services[s.serviceName] = {
          status: 'Exited',
          image: s.image,
          containerId: `c-${id}-${s.serviceName}`,
          exitCode: 1,
          restartCount: Math.floor(rng() * 5),
        };
      } else {services[s.serviceName] = {
          status: 'Downloading',
          image: s.image,
          downloadProgress: Math.floor(rng() * 100),
        };}
    }
    apps[id] = { services };
  }
  return {
    apps: roll < 0.05 ? undefined : apps,
    system: { uptime: Math.floor(rng() * 1e6) },
    resources: { cpu_usage: Math.round(rng() * 1000) / 10, memory_usage: Math.round(rng() * 1000) / 10 },
  };
}

/** Generates `count` valid events of one device (a few more may come from the last command). */
export function generateHistory(options: HistoryOptions): GeneratedEvent[] {
  const rng = seededRandom(options.seed);
  const t0 = Date.parse(options.start);
  const gap = options.spanMs / options.count;
  let t = t0;
  let state: DeviceState = initialState();
  const events: GeneratedEvent[] = [];
  const admin: Actor = { type: 'admin', id: 'bench-admin' };
  const device: Actor = { type: 'device', id: options.uuid };
  const run = (command: DeviceCommand, actor: Actor) => {
    let decided: DeviceEvent[];
    try {
      decided = decide(command, state);
    } catch (error) {
      if (error instanceof DomainError) return;
      throw error;
    }
    for (const event of decided) {
      state = evolve(state, event);
      events.push({ ...event, actor } as GeneratedEvent);
    }
  };
  run({
    type: 'register_device',
    now: new Date(t).toISOString(),
    device_name: `gen-${options.uuid.slice(0, 8)}`,
    device_type: 'raspberry-pi-4',
    fleet_id: options.fleet ?? 'fleet-gen',
    mac_address: null,
    ip_address: null,
    os_version: null,
    supervisor_version: null,
    provisioning_key_id: 'gen-key',
  }, { type: 'provisioning_key', id: 'gen-key' });
  while (events.length < options.count) {
    t += gap * (0.2 + rng() * 1.6);
    let now = t;
    if (options.outOfOrder !== undefined && rng() < options.outOfOrder) {
      now = Math.max(t0 + 1, t - rng() * (options.jitterMs ?? 60_000));
    }
    const at = new Date(now).toISOString();
    const roll = rng();
    const registered = state.status === 'registered' ? state : null;
    if (registered === null) break;
    if (roll < 0.01 || registered.target === null) {
      run({ type: 'set_target_state', now: at, target: randomTarget(rng) }, admin);
    } else if (roll < 0.014 || !registered.is_active) {
      run({
        type: 'set_active',
        now: at,
        is_active: !registered.is_active,
        reason: registered.is_active ? 'maintenance' : 'back',
      }, admin);
    } else run({ type: 'report_state', now: at, ...reportFor(state, rng) }, device);
  }
  return events;
}

/**
 * Appends generated events through the event store in batches, and writes the read model (the
 * fold of the events as stored: the store stamps a backwards timestamp with the one before it).
 */
export async function appendHistory(
  pool: DatabasePool,
  store: EventStore,
  uuid: string,
  events: readonly GeneratedEvent[],
  batch = 2_000,
): Promise<void> {
  let head = await store.head(pool, 'device', uuid);
  let state: DeviceState = initialState();
  for (let i = 0; i < events.length; i += batch) {
    const slice = events.slice(i, i + batch);
    await pool.transaction(async (tx: CommonQueryMethods) => {
      const stored = await store.append(
        tx,
        'device',
        uuid,
        head,
        slice.map((e): NewEvent => ({
          event_type: e.type,
          data: e.data as Record<string, unknown>,
          timestamp: e.timestamp,
          source: 'api',
          metadata: {
            actor: e.actor,
            endpoint: 'generated',
            request_id: null,
            ip_address: null,
            user_agent: 'devicetrail-generator',
          },
        })),
      );
      head = headAfter(stored);
      for (const e of stored) state = evolve(state, toDeviceEvent(e));
      if (state.status === 'registered') await upsertDevice(tx, uuid, state, null);
    });
  }
}

/**
 * Appends a new device's `events` with the timestamps they were generated with, as the event
 * store wrote them before migration 011: some stamped before the event of the version before
 * them (two requests that read the clock in one order and committed in the other). Written
 * directly, as that store did (versions numbered, hashes chained over the timestamps as
 * stored), since the event store stamps in order now; the stream head gets the latest
 * timestamp, as migration 011 leaves it (on a schema before 011, no such column). For the
 * tests and the benchmark of stored out-of-order logs.
 */
export async function appendAsBefore011(
  pool: DatabasePool,
  store: EventStore,
  uuid: string,
  events: readonly GeneratedEvent[],
  batch = 500,
): Promise<void> {
  const since011 = await pool.oneFirst(sql.type(z.object({ exists: z.boolean() }))`
    SELECT EXISTS (SELECT 1 FROM information_schema.columns
                    WHERE table_name = 'streams' AND column_name = 'last_timestamp') AS exists`);
  let head = newStreamHead();
  let state: DeviceState = initialState();
  for (let i = 0; i < events.length; i += batch) {
    const rows: PreparedEvent[] = [];
    for (const e of events.slice(i, i + batch)) {
      // one at a time, from a head without a timestamp: nothing is raised
      const [row] = prepareEvents('device', uuid, head, [{
        event_type: e.type,
        data: e.data as Record<string, unknown>,
        timestamp: e.timestamp,
        source: 'api',
        metadata: { actor: e.actor, endpoint: 'generated', request_id: null, ip_address: null, user_agent: null },
      }]);
      rows.push(row!);
      head = { version: row!.aggregate_version, last_hash: row!.hash, last_timestamp: null };
      state = evolve(state, toDeviceEvent(row!));
    }
    const latest = new Date(Math.max(...rows.map((r) => Date.parse(r.timestamp)))).toISOString();
    await pool.transaction(async (tx) => {
      await store.partitions.ensure(tx, rows.map((r) => r.timestamp));
      await tx.query(sql.unsafe`
        INSERT INTO events (event_id, event_type, aggregate_type, aggregate_id, aggregate_version, data, metadata, "timestamp", source, hash)
        SELECT e.event_id, e.event_type, e.aggregate_type, e.aggregate_id, e.aggregate_version, e.data, e.metadata, e."timestamp", e.source, e.hash
          FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
            AS e(event_id uuid, event_type text, aggregate_type text, aggregate_id text, aggregate_version int8,
                 data jsonb, metadata jsonb, "timestamp" timestamptz, source text, hash text)`);
      await tx.query(
        since011
          ? sql.unsafe`
        INSERT INTO streams (aggregate_type, aggregate_id, version, last_hash, last_timestamp)
        VALUES ('device', ${uuid}, ${head.version}, ${head.last_hash}, ${latest}::timestamptz)
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
          version = EXCLUDED.version, last_hash = EXCLUDED.last_hash,
          last_timestamp = GREATEST(streams.last_timestamp, EXCLUDED.last_timestamp)`
          : sql.unsafe`
        INSERT INTO streams (aggregate_type, aggregate_id, version, last_hash)
        VALUES ('device', ${uuid}, ${head.version}, ${head.last_hash})
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET
          version = EXCLUDED.version, last_hash = EXCLUDED.last_hash`,
      );
      if (state.status === 'registered') await upsertDevice(tx, uuid, state, null);
    });
  }
}
