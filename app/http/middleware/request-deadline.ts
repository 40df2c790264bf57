// A deadline per request (REQUEST_TIMEOUT): a handler that has not answered by then gets a
// 503 with Retry-After instead of holding the client. A database that stops answering without
// closing its connections (frozen, or cut off by the network) otherwise leaves requests
// waiting for as long as TCP lets them. The handler is not cancelled; what it does after the
// deadline is not reported to the client, whose request then has an unknown outcome, as after
// any timeout. A streamed body (the SSE feed) is not limited: its handler answers at once.
import type { Context, Next } from 'koa';
import { HttpError } from '../errors.ts';

/** Koa middleware: 503 `request_timeout` after `timeoutMs`; `onLate` gets a late handler's error. */
export function requestDeadline(timeoutMs: number, onLate: (error: unknown, ctx: Context) => void) {
  return function deadline(ctx: Context, next: Next): Promise<void> {
    // one promise and one timer per request (issue #19): settled by the handler, or by the timer
    return new Promise<void>((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        reject(
          new HttpError(
            503,
            'request_timeout',
            `no answer within ${timeoutMs} ms (is the database reachable?); retry later`,
            undefined,
            { 'Retry-After': '5' },
          ),
        );
      }, timeoutMs);
      next().then(
        () => {
          if (late) return;
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          if (late) return onLate(error, ctx);
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  };
}
