// Online key guessing (issue #16, finding 8): failed authentications are counted per client
// address and per key prefix (the first KEY_PREFIX_LENGTH characters of the secret tried) in a
// sliding window, in this process's memory. Once either count reaches its limit, a request
// from that address, or with a secret of that prefix, is answered 429 with Retry-After before
// its credential is looked at, until the oldest counted failure leaves the window. A
// successful authentication counts nothing. Limits: AUTH_FAILURE_LIMIT_PER_ADDRESS and
// AUTH_FAILURE_LIMIT_PER_KEY_PREFIX (README "Rate limits"). The address is the TCP peer's:
// behind a proxy every client shares the proxy's budget.

/** At most `limit` failures within any `windowMs` (the shape of rate-limit.ts's RateLimit, parsed alike from `<count>/<duration>`). */
export type RateLimit = { limit: number; windowMs: number };

/** How many characters of a tried secret name its prefix. */
export const KEY_PREFIX_LENGTH = 8;

/** At most `limit` failed authentications within any `windowMs`, per address and per key prefix; null: no limit. */
export type AuthThrottleLimits = { perAddress: RateLimit | null; perKeyPrefix: RateLimit | null };

/** Which limit a refused request is over, and for how many more seconds. */
export type ThrottleVerdict = { wait: number; by: 'address' | 'key prefix'; rate: RateLimit };

export type AuthThrottle = {
  /** Null when the address and the secret's prefix may try now; else the limit they are over. */
  check: (address: string, secret: string | null) => ThrottleVerdict | null;
  /** Counts one failed authentication for the address and the secret's prefix. */
  fail: (address: string, secret: string | null) => void;
  /** Keys (addresses and prefixes) with failures remembered, for tests. */
  size: () => number;
};

/** Windows are forgotten beyond this many keys (expired first, then the least recently failed). */
const MAX_KEYS = 100_000;

/** A sliding window of failure times per key, the last `limit` of them kept. */
function createWindow(rate: RateLimit, now: () => number) {
  const failures = new Map<string, number[]>();
  const live = (times: number[], at: number) => {
    while (times.length > 0 && times[0]! <= at - rate.windowMs) times.shift();
    return times;
  };
  function evict(at: number): void {
    for (const [key, times] of failures) if (live(times, at).length === 0) failures.delete(key);
    for (const key of failures.keys()) {
      if (failures.size < MAX_KEYS * 0.9) break;
      failures.delete(key);
    }
  }
  return {
    /** Seconds until `key` may fail again without being over the limit; 0 now. */
    wait(key: string): number {
      const times = failures.get(key);
      if (times === undefined) return 0;
      const at = now();
      if (live(times, at).length < rate.limit) return 0;
      return Math.max(1, Math.ceil((times[0]! + rate.windowMs - at) / 1000));
    },
    fail(key: string): void {
      const at = now();
      const times = live(failures.get(key) ?? [], at);
      times.push(at);
      if (times.length > rate.limit) times.splice(0, times.length - rate.limit);
      failures.delete(key); // re-inserted last: the Map's order is least recently failed first
      if (failures.size >= MAX_KEYS) evict(at);
      failures.set(key, times);
    },
    size: () => failures.size,
  };
}

/** The prefix a secret's failures are counted under. */
export const keyPrefixOf = (secret: string): string => secret.slice(0, KEY_PREFIX_LENGTH);

/** A throttle with these limits; `now` in milliseconds. */
export function createAuthThrottle(limits: AuthThrottleLimits, now: () => number): AuthThrottle {
  const byAddress = limits.perAddress === null ? null : createWindow(limits.perAddress, now);
  const byPrefix = limits.perKeyPrefix === null ? null : createWindow(limits.perKeyPrefix, now);
  return {
    check(address, secret) {
      const addressWait = byAddress?.wait(address) ?? 0;
      if (addressWait > 0) return { wait: addressWait, by: 'address', rate: limits.perAddress! };
      const prefixWait = secret === null || byPrefix === null ? 0 : byPrefix.wait(keyPrefixOf(secret));
      if (prefixWait > 0) return { wait: prefixWait, by: 'key prefix', rate: limits.perKeyPrefix! };
      return null;
    },
    fail(address, secret) {
      byAddress?.fail(address);
      if (secret !== null && byPrefix !== null) byPrefix.fail(keyPrefixOf(secret));
    },
    size: () => (byAddress?.size() ?? 0) + (byPrefix?.size() ?? 0),
  };
}
