// Regression tests for slow bodies (hardening issue, finding 11): a client that dribbles its
// request is cut off at the body deadline, not after Node's 300 s, and sockets are capped.
import test from 'ava';
import Koa from 'koa';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createHttpServer } from '../../app/http/server.ts';

async function serve(limits: { headersTimeoutMs: number; bodyTimeoutMs: number; maxConnections: number }) {
  const app = new Koa();
  app.use(async (ctx) => {
    // like the body parser: the answer waits for the whole body
    await new Promise((resolve) => ctx.req.on('end', resolve).on('error', resolve).resume());
    ctx.body = { ok: true };
  });
  const server = createHttpServer(app, limits);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Resolves with what the server sent once it closes the socket (or after `capMs`, with null). */
function untilClosed(socket: Socket, capMs: number): Promise<{ text: string; afterMs: number } | null> {
  const started = Date.now();
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString('latin1')));
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), capMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ text, afterMs: Date.now() - started });
    });
    socket.once('error', () => undefined);
  });
}

test('a body dribbled a byte at a time is cut off with 408 at the body deadline', async (t) => {
  const { server, port } = await serve({ headersTimeoutMs: 1000, bodyTimeoutMs: 1500, maxConnections: 100 });
  const socket = connect(port, '127.0.0.1');
  const closed = untilClosed(socket, 20_000);
  socket.write('POST /x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
  const drip = setInterval(() => socket.writable && socket.write(' '), 200);
  const result = await closed;
  clearInterval(drip);
  socket.destroy();
  server.close();
  t.not(result, null, 'the server closed the connection (Node alone would hold it for 300 s)');
  t.regex(result!.text, /^HTTP\/1\.1 408/);
  t.log(`closed after ${result!.afterMs} ms`);
});

test('a request head that never ends is cut off at the headers deadline', async (t) => {
  const { server, port } = await serve({ headersTimeoutMs: 1000, bodyTimeoutMs: 5000, maxConnections: 100 });
  const socket = connect(port, '127.0.0.1');
  const closed = untilClosed(socket, 20_000);
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
  const drip = setInterval(() => socket.writable && socket.write('X-A: b\r\n'), 200);
  const result = await closed;
  clearInterval(drip);
  socket.destroy();
  server.close();
  t.not(result, null);
  t.regex(result!.text, /^HTTP\/1\.1 408/);
});

test('connections beyond the cap are closed at once; those within it are served', async (t) => {
  const { server, port } = await serve({ headersTimeoutMs: 5000, bodyTimeoutMs: 5000, maxConnections: 2 });
  const held = [connect(port, '127.0.0.1'), connect(port, '127.0.0.1')];
  await Promise.all(held.map((s) => new Promise((r) => s.once('connect', r))));
  await new Promise((r) => setTimeout(r, 100));
  const extra = connect(port, '127.0.0.1');
  const closed = untilClosed(extra, 10_000);
  extra.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const result = await closed;
  t.not(result, null, 'the third connection is closed');
  t.is(result!.text, '', 'and gets no answer');
  const served = untilClosed(held[0]!, 10_000);
  held[0]!.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.regex((await served)?.text ?? '', /^HTTP\/1\.1 200/);
  for (const s of held) s.destroy();
  server.close();
});
