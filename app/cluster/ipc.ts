// The messages between the cluster primary (app/cluster/primary.ts) and its workers, over
// node:cluster's IPC channel. prom-client's own metric messages share the channel; these all
// carry a `type` starting with "devicetrail:".
//
// - ready (worker → primary): the worker listens and has started everything it runs.
// - request / reply (both ways): a call with an id; the reply carries the value or an error.
//   Workers ask the primary for 'metrics' (every worker's, aggregated) and for
//   'mqtt.issueCredentials' (forwarded to the lead worker, which holds the embedded broker).
import process from 'node:process';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** Worker → primary: listening on `port`, everything started. */
export type ReadyMessage = { type: 'devicetrail:ready'; port: number };
/** A call; `method` names it. */
export type RequestMessage = { type: 'devicetrail:request'; id: number; method: string; payload: unknown };
/** The answer to the request with the same id. */
export type ReplyMessage =
  | { type: 'devicetrail:reply'; id: number; ok: true; value: unknown }
  | { type: 'devicetrail:reply'; id: number; ok: false; error: string };

/** Methods of the protocol. */
export const METHODS = { metrics: 'metrics', issueMqttCredentials: 'mqtt.issueCredentials' } as const;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

/** A message of this protocol, or null (prom-client's, or anything else). */
export function asMessage(value: unknown): ReadyMessage | RequestMessage | ReplyMessage | null {
  if (!isObject(value) || typeof value['type'] !== 'string') return null;
  switch (value['type']) {
    case 'devicetrail:ready':
      return typeof value['port'] === 'number' ? value as ReadyMessage : null;
    case 'devicetrail:request':
      return typeof value['id'] === 'number' && typeof value['method'] === 'string' ? value as RequestMessage : null;
    case 'devicetrail:reply':
      return typeof value['id'] === 'number' && typeof value['ok'] === 'boolean' ? value as ReplyMessage : null;
    default:
      return null;
  }
}

/** Calls awaiting replies, by id, each failing after its timeout. */
export function createPendingCalls() {
  let next = 0;
  const pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  return {
    /** A new id and the promise its reply settles. */
    open(method: string, timeoutMs: number): { id: number; reply: Promise<unknown> } {
      next += 1;
      const id = next;
      const reply = new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
      });
      return { id, reply };
    },
    /** Settles the call a reply answers (ignored when it timed out already). */
    settle(message: ReplyMessage): void {
      const call = pending.get(message.id);
      if (call === undefined) return;
      pending.delete(message.id);
      clearTimeout(call.timer);
      if (message.ok) call.resolve(message.value);
      else call.reject(new Error(message.error));
    },
    /** Fails every call still waiting. */
    failAll(reason: string): void {
      for (const [id, call] of pending) {
        pending.delete(id);
        clearTimeout(call.timer);
        call.reject(new Error(reason));
      }
    },
  };
}

/** A worker's side of the channel. */
export type WorkerIpc = {
  /** Asks the primary; rejects with its error or after `timeoutMs`. */
  request: (method: string, payload: unknown, timeoutMs?: number) => Promise<unknown>;
  /** Answers the primary's requests for `method` (the lead worker: MQTT credentials). */
  handle: (method: string, handler: (payload: unknown) => Promise<unknown>) => void;
  /** Tells the primary this worker is listening on `port` and started. */
  ready: (port: number) => void;
};

const send = (message: ReadyMessage | RequestMessage | ReplyMessage) => {
  // the primary is gone: the worker exits on the channel's disconnect anyway
  if (process.send !== undefined && process.connected) process.send(message);
};

/** The channel of this worker process (a process forked by node:cluster). */
export function workerIpc(): WorkerIpc {
  const calls = createPendingCalls();
  const handlers = new Map<string, (payload: unknown) => Promise<unknown>>();
  process.on('message', (raw: unknown) => {
    const message = asMessage(raw);
    if (message === null) return;
    if (message.type === 'devicetrail:reply') {
      calls.settle(message);
    } else if (message.type === 'devicetrail:request') {
      const handler = handlers.get(message.method);
      const answer = handler === undefined
        ? Promise.reject(new Error(`this worker does not answer ${message.method}`))
        : handler(message.payload);
      answer.then(
        (value) => send({ type: 'devicetrail:reply', id: message.id, ok: true, value }),
        (error: unknown) =>
          send({
            type: 'devicetrail:reply',
            id: message.id,
            ok: false,
            error: (error as Error).message ?? String(error),
          }),
      );
    }
  });
  return {
    request(method, payload, timeoutMs = 10_000) {
      const { id, reply } = calls.open(method, timeoutMs);
      send({ type: 'devicetrail:request', id, method, payload });
      return reply;
    },
    handle(method, handler) {
      handlers.set(method, handler);
    },
    ready(port) {
      send({ type: 'devicetrail:ready', port });
    },
  };
}

/**
 * Lets the primary gather `registry` (prom-client answers its requests in this worker):
 * /metrics in any worker then serves every worker's metrics, summed.
 */
export function shareMetrics(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // the constructor installs prom-client's listener for the primary's requests in a worker
  void new AggregatorRegistry();
}
