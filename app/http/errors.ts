// HTTP errors and the one middleware that maps every failure to a JSON error body.
import type { Context, Next } from 'koa';
import { BackendTerminatedError, BackendTerminatedUnexpectedlyError, ConnectionError } from 'slonik';
import { ZodError, type ZodIssue } from 'zod';
import { DomainError, type DomainErrorCode } from '../../domain/errors.ts';
import { ConcurrencyError } from '../../infra/event-store/event-store.ts';

/** An error with an HTTP status and a stable code. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, details?: unknown, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.headers = headers;
  }
}

const domainStatus: Record<DomainErrorCode, number> = {
  device_not_found: 404,
  device_already_registered: 409,
  device_inactive: 403,
  target_version_mismatch: 412,
  provisioning_key_not_found: 404,
  provisioning_key_revoked: 403,
  provisioning_key_expired: 403,
  provisioning_key_exists: 409,
};

/**
 * A union's issues from the branch the value was meant for: the one that did not fail on the
 * value's own type (a list of services given to `record | list` fails the record branch on
 * its type, and the list branch on what is wrong inside). "Invalid input" when every branch
 * failed on the type itself.
 */
function unionIssues(issues: readonly ZodIssue[]): ZodIssue[] {
  return issues.flatMap((issue) => {
    if (issue.code !== 'invalid_union') return [issue];
    const meant = issue.unionErrors.find((branch) =>
      !branch.issues.some((i) => i.code === 'invalid_type' && i.path.length === issue.path.length)
    );
    return meant === undefined ? [issue] : unionIssues(meant.issues);
  });
}

/** Zod issues as `{field, message}` pairs; the first one names the problem. */
export function describeIssues(issues: readonly ZodIssue[], root: string): { field: string; message: string }[] {
  return unionIssues(issues).map((issue) => {
    const field = [root, ...issue.path].join('.');
    if (issue.code === 'unrecognized_keys') return { field, message: `unknown field(s): ${issue.keys.join(', ')}` };
    return { field, message: issue.message };
  });
}

/** Parses `value` with `schema` or throws a 400 that names the field. */
export function parseOr400<T>(
  schema: { safeParse: (v: unknown) => { success: true; data: T } | { success: false; error: ZodError } },
  value: unknown,
  root = 'body',
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = describeIssues(result.error.issues, root);
  const first = problems[0]!;
  throw new HttpError(400, 'invalid_request', `${first.field}: ${first.message}`, problems);
}

// socket errors, and PostgreSQL's connection exceptions (class 08), admin/crash shutdown,
// "cannot connect now" (starting up, shutting down) and too many connections
const DATABASE_DOWN_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '53300',
]);
const DATABASE_DOWN_MESSAGE =
  /ECONNREFUSED|ECONNRESET|Connection terminated|timeout exceeded when trying to connect|not queryable|Connection pool (is being terminated|is being shut down|has ended|has been shut down)/i;

/** True when `error` (or an error it was caused by) means the database cannot be reached now. */
export function isDatabaseDown(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 5) return false;
  if (
    error instanceof ConnectionError || error instanceof BackendTerminatedError ||
    error instanceof BackendTerminatedUnexpectedlyError
  ) return true;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (DATABASE_DOWN_CODES.has(code) || code.startsWith('08'))) return true;
  return DATABASE_DOWN_MESSAGE.test(error.message) || isDatabaseDown(error.cause, depth + 1);
}

/** Maps every error to `{"error": {code, message, details?}}`; never leaks a stack. */
export function errorHandler(onUnexpected: (error: unknown, ctx: Context) => void) {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } catch (error) {
      let status = 500;
      let body: { code: string; message: string; details?: unknown } = {
        code: 'internal_error',
        message: 'internal server error',
      };
      if (error instanceof HttpError) {
        status = error.status;
        body = {
          code: error.code,
          message: error.message,
          ...(error.details === undefined ? {} : { details: error.details }),
        };
        for (const [k, v] of Object.entries(error.headers)) ctx.set(k, v);
      } else if (error instanceof DomainError) {
        status = domainStatus[error.code];
        body = {
          code: error.code,
          message: error.message,
          ...(error.details === undefined ? {} : { details: error.details }),
        };
      } else if (error instanceof ConcurrencyError) {
        // handleCommand's retries all lost the race for one stream: a conflict, not a fault
        status = 409;
        body = { code: 'concurrent_update', message: 'concurrent requests changed this resource; retry' };
        ctx.set('Retry-After', '1');
      } else if (isDatabaseDown(error)) {
        status = 503;
        body = { code: 'database_unavailable', message: 'the database is unavailable; retry later' };
        ctx.set('Retry-After', '5');
      } else if (isContentEncodingError(error)) {
        // a Content-Encoding the body parser cannot undo (it inflates gzip, deflate and br), or
        // a body that is not what its encoding says; the size limit applies to the inflated body
        status = error.status === 415 ? 415 : 400;
        // what is left of the body was piped into the failed decoder and stays unread: drain it,
        // and close the connection after this answer, so a keep-alive client does not send its
        // next request down a socket the server is about to drop (the fuzz found ECONNRESETs)
        ctx.req.unpipe();
        ctx.req.resume();
        ctx.set('Connection', 'close');
        body = status === 415
          ? { code: 'unsupported_media_type', message: `${error.message} (gzip, deflate, br or none)` }
          : {
            code: 'invalid_body',
            message: `request body does not decode as its Content-Encoding says: ${error.message}`,
          };
      } else if (isBodyParserError(error)) {
        status = error.status;
        body = error.status === 413
          ? { code: 'payload_too_large', message: 'request body is too large' }
          : { code: 'invalid_json', message: `request body is not valid JSON: ${error.message}` };
      } else {
        onUnexpected(error, ctx);
      }
      ctx.status = status;
      ctx.body = { error: body };
    }
  };
}

function isContentEncodingError(error: unknown): error is Error & { status?: number } {
  if (!(error instanceof Error)) return false;
  const { code, status } = error as { code?: unknown; status?: unknown };
  // zlib's own errors (gzip/deflate: Z_DATA_ERROR, Z_BUF_ERROR…; brotli: ERR__ERROR_FORMAT_…,
  // ERR_BROTLI_…) and inflation's 415 for an unknown encoding
  return (typeof code === 'string' && /^(Z_|ERR__ERROR_|ERR_BROTLI)/.test(code)) ||
    (status === 415 && error.message.startsWith('Unsupported Content-Encoding'));
}

function isBodyParserError(error: unknown): error is Error & { status: number } {
  // raw-body errors carry a `type` ('entity.too.large'…); co-body's JSON errors are SyntaxErrors
  return error instanceof Error && typeof (error as { status?: unknown }).status === 'number' &&
    [400, 413, 415].includes((error as unknown as { status: number }).status) &&
    (typeof (error as { type?: unknown }).type === 'string' || error instanceof SyntaxError);
}
