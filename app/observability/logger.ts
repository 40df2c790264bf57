// Structured logs (pino): JSON lines with request id, route, status and duration; secrets
// redacted (see log-redact.ts); pretty lines on a developer's terminal.
import type { Context, Next } from 'koa';
import { type DestinationStream, type Logger, pino } from 'pino';
import { prettyStream } from './log-pretty.ts';
import { redact } from './log-redact.ts';
import { UUID_PATTERN as UUID } from '../../domain/ids.ts';

export type { Logger } from 'pino';

/** How to log: level, format and where the lines go (stdout by default). */
export type LoggerOptions = {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  format?: 'auto' | 'json' | 'pretty';
  nodeEnv?: 'development' | 'production' | 'test';
  /** For tests: receives each line. */
  destination?: { write: (line: string) => unknown };
  isTTY?: boolean;
};

/** `auto` is pretty only on a terminal outside production; otherwise JSON. */
export function usePretty(options: Pick<LoggerOptions, 'format' | 'nodeEnv' | 'isTTY'>): boolean {
  if (options.format === 'pretty') return true;
  if (options.format === 'json') return false;
  return options.isTTY === true && options.nodeEnv !== 'production';
}

/** The process logger. */
export function createLogger(options: LoggerOptions): Logger {
  const isTTY = options.isTTY ?? process.stdout.isTTY === true;
  const out = options.destination ?? process.stdout;
  const destination: DestinationStream = usePretty({ ...options, isTTY })
    ? prettyStream(out, isTTY && options.destination === undefined)
    : {
      write: (line: string) => {
        out.write(line);
      },
    };
  return pino({
    level: options.level,
    base: { service: 'devicetrail', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // errors are turned into plain objects (type, message, code, stack, cause) by redact()
    serializers: { err: (value: unknown) => value },
    formatters: {
      level: (label) => ({ level: label }),
      // every field of every line, at any depth: secret-looking keys and values are replaced
      log: (object) => redact(object) as Record<string, unknown>,
    },
  }, destination);
}

/** A logger that writes nothing (the default for apps built in tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

type RoutedContext = Context & { _matchedRoute?: string | RegExp; params?: Record<string, string> };

/** The route pattern a request matched (`/api/v1/devices/:uuid`), or "unmatched". */
export function routeOf(ctx: Context): string {
  const route = (ctx as RoutedContext)._matchedRoute;
  return typeof route === 'string' ? route : 'unmatched';
}

/** The device a request is about: the `:uuid` path parameter, else the calling device, else a registration's `uuid`. */
export function deviceUuidOf(ctx: Context): string | undefined {
  const param = (ctx as RoutedContext).params?.['uuid'];
  if (param !== undefined && UUID.test(param)) return param.toLowerCase();
  const principal = ctx.state['principal'] as { type?: string; uuid?: string } | undefined;
  if (principal?.type === 'device') return principal.uuid;
  const body = (ctx.request as { body?: unknown }).body as { uuid?: unknown } | undefined;
  return routeOf(ctx) === '/api/v1/device/register' && typeof body?.uuid === 'string' && UUID.test(body.uuid)
    ? body.uuid.toLowerCase()
    : undefined;
}

const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Logs one line per request when it finishes: request id, method, route, status, duration,
 * device uuid where known, caller kind. Probes and scrapes log at debug. A line below the
 * logger's level is not even built (the ingest path at LOG_LEVEL=warn logs nothing; issue #19).
 */
export function logRequests(logger: Logger, options: { enabled: boolean } = { enabled: true }) {
  return async function logRequest(ctx: Context, next: Next): Promise<void> {
    if (!options.enabled) return await next();
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = routeOf(ctx);
      const status = ctx.status;
      const level = status >= 500 ? 'error' : QUIET_ROUTES.has(route) ? 'debug' : 'info';
      if (logger.isLevelEnabled(level)) {
        const principal = ctx.state['principal'] as { type?: string; id?: string; uuid?: string } | undefined;
        const line = {
          request_id: ctx.state['requestId'] as string | undefined,
          method: ctx.method,
          route,
          path: ctx.path,
          status,
          duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
          device_uuid: deviceUuidOf(ctx),
          actor: principal?.type === undefined
            ? undefined
            : `${principal.type}:${principal.id ?? principal.uuid ?? '?'}`,
        };
        logger[level](line, `${ctx.method} ${route === 'unmatched' ? ctx.path : route} ${status}`);
      }
    }
  };
}
