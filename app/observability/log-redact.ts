// Keeps secrets out of logs: fields whose names look secret are replaced, and so are
// strings that look like a devicetrail secret or a connection string with a password.

const SECRET_KEY = /authorization|cookie|password|passwd|secret|token|api[-_]?key|credential|^key$|private[-_]?key/i;
const SECRET_VALUE = /\b(?:dt[ap]|whsec)_[A-Za-z0-9_-]{16,}/g;
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)[^\s@/]+@/gi;
const BEARER = /\b(Bearer\s+)[\x21-\x7e]+/gi;

/** What replaces a secret. */
export const REDACTED = '[Redacted]';

/** A string with secret-looking substrings replaced. */
export function redactString(value: string): string {
  return value.replace(SECRET_VALUE, REDACTED).replace(URL_PASSWORD, `$1${REDACTED}@`).replace(BEARER, `$1${REDACTED}`);
}

/** A deep copy of `value` with secret-looking keys and values replaced; errors become plain objects. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return '[Truncated]';
  if (typeof value === 'string') return redactString(value);
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      type: value.name,
      message: redactString(value.message),
      ...(typeof code === 'string' ? { code } : {}),
      ...(value.stack === undefined ? {} : { stack: redactString(value.stack) }),
      ...(value.cause === undefined ? {} : { cause: redact(value.cause, depth + 1) }),
    };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null ? REDACTED : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}
