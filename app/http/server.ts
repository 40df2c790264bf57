// The HTTP server around the Koa app, with limits suited to device traffic. Node's defaults let
// a client hold a connection for 300 s while it dribbles a body (and check that only every 30 s);
// here the head must arrive in `headersTimeoutMs`, the whole request in `bodyTimeoutMs`, checked
// every second, and at most `maxConnections` sockets are open at once (more are closed at accept).
import { createServer, type Server } from 'node:http';
import type Koa from 'koa';

/** Limits on slow or numerous clients. */
export type ServerLimits = { headersTimeoutMs: number; bodyTimeoutMs: number; maxConnections: number };

/** An HTTP server for `app` with those limits (not yet listening). */
export function createHttpServer(app: Koa, limits: ServerLimits): Server {
  const server = createServer({
    headersTimeout: limits.headersTimeoutMs,
    // Node requires requestTimeout ≥ headersTimeout (0 would disable it)
    requestTimeout: Math.max(limits.bodyTimeoutMs, limits.headersTimeoutMs),
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  }, app.callback());
  server.maxConnections = limits.maxConnections;
  return server;
}
