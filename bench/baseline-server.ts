// The ingest benchmark's baseline: a minimal Koa server doing one parameterised INSERT of
// an equivalent event row per request, nothing else (no auth, no validation, no fold).
// Run by bench/ingest.ts: DATABASE_URL and PORT come from the environment.
import Koa from 'koa';
import { bodyParser } from '@koa/bodyparser';
import pg from 'pg';
import { randomUUID } from 'node:crypto';

const pool = new pg.Pool({ connectionString: process.env['DATABASE_URL'], max: 20 });
await pool.query(`CREATE TABLE IF NOT EXISTS baseline_events (
  event_id uuid PRIMARY KEY, event_type text NOT NULL, aggregate_type text NOT NULL, aggregate_id text NOT NULL,
  data jsonb NOT NULL, metadata jsonb NOT NULL, "timestamp" timestamptz NOT NULL, source text NOT NULL)`);

const app = new Koa();
app.use(bodyParser({ enableTypes: ['json'] }));
app.use(async (ctx) => {
  // only the reports count: the harness's readiness probe (GET /) must not insert a row
  if (ctx.method !== 'PATCH' || ctx.path !== '/api/v1/device/state') {
    ctx.status = 404;
    return;
  }
  const body = (ctx.request as unknown as { body: Record<string, unknown> }).body;
  const [uuid, report] = Object.entries(body)[0] ?? ['', {}];
  await pool.query(
    'INSERT INTO baseline_events (event_id, event_type, aggregate_type, aggregate_id, data, metadata, "timestamp", source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    [
      randomUUID(),
      'current_state.updated',
      'device',
      uuid,
      JSON.stringify(report),
      JSON.stringify({ ip_address: ctx.ip, user_agent: ctx.get('User-Agent') }),
      new Date().toISOString(),
      'api',
    ],
  );
  ctx.body = { events_written: 1 };
});
app.listen(Number(process.env['PORT']), '127.0.0.1', () => console.log('baseline listening'));
