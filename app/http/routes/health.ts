// Probes: /healthz (the process answers) and /readyz (it can serve: database reachable,
// every shipped migration applied, events partitions present for today and the days ahead,
// not shutting down). Unauthenticated; they reveal no data.
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { type DatabasePool, sql } from 'slonik';
import { z } from 'zod';
import { listMigrations, pendingMigrations } from '../../../infra/postgres/migrate.ts';
import { utcDay } from '../../../infra/event-store/partitions.ts';
import type { AppDeps } from '../deps.ts';
import { within } from '../../shutdown.ts';

/** What readiness needs besides the app's dependencies. */
export type HealthOptions = { partitionDaysAhead: number; draining: () => boolean; checkTimeoutMs?: number };

type Check = { ok: boolean; [detail: string]: unknown };

const nameRow = z.object({ name: z.string() });

async function databaseCheck(pool: DatabasePool): Promise<Check> {
  const started = performance.now();
  await pool.query(sql.unsafe`SELECT 1`);
  return { ok: true, latency_ms: Math.round(performance.now() - started) };
}

async function migrationsCheck(pool: DatabasePool): Promise<Check> {
  const shipped = await listMigrations();
  const missing = await pendingMigrations(pool);
  return { ok: missing.length === 0, shipped: shipped.length, applied: shipped.length - missing.length, missing };
}

async function partitionsCheck(pool: DatabasePool, now: Date, daysAhead: number): Promise<Check> {
  const present = new Set(
    await pool.anyFirst(sql.type(nameRow)`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'events'::regclass`),
  );
  const missing: string[] = [];
  for (let i = 0; i <= daysAhead; i += 1) {
    const day = utcDay(now.getTime() + i * 86_400_000);
    if (!present.has(`events_${day.replaceAll('-', '')}`)) missing.push(day);
  }
  return { ok: missing.length === 0, days_ahead: daysAhead, missing_days: missing };
}

async function run(check: () => Promise<Check>, timeoutMs: number): Promise<Check> {
  try {
    const result = await within(check(), timeoutMs);
    return result.done ? result.value : { ok: false, error: `no answer within ${timeoutMs} ms` };
  } catch (error) {
    // the code (ECONNREFUSED, 42P01…) is enough for an operator; no connection details
    const code = (error as { code?: unknown }).code;
    return { ok: false, error: typeof code === 'string' ? code : (error as Error).name };
  }
}

/** Registers GET /healthz and GET /readyz on a router without prefix. */
export function healthRoutes(router: Router, deps: AppDeps, options: HealthOptions): void {
  const startedAt = Date.now();
  const timeoutMs = options.checkTimeoutMs ?? 3000;

  router.get('/healthz', (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok', uptime_s: Math.round((Date.now() - startedAt) / 1000) };
  });

  router.get('/readyz', async (ctx: Context) => {
    ctx.set('Cache-Control', 'no-store');
    if (options.draining()) {
      ctx.status = 503;
      ctx.body = { status: 'draining', checks: {} };
      return;
    }
    const database = await run(() => databaseCheck(deps.pool), timeoutMs);
    const skipped: Check = { ok: false, error: 'database unreachable' };
    const [migrations, partitions] = database.ok
      ? await Promise.all([
        run(() => migrationsCheck(deps.pool), timeoutMs),
        run(() => partitionsCheck(deps.pool, deps.clock(), options.partitionDaysAhead), timeoutMs),
      ])
      : [skipped, skipped];
    const ready = database.ok && migrations.ok && partitions.ok;
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'not_ready', checks: { database, migrations, partitions } };
  });
}
