// Where webhooks may be delivered (issue #16, finding 7: a webhook could target loopback,
// private and link-local addresses, so an admin could read internal services through the
// delivery log). Unless WEBHOOK_ALLOW_PRIVATE=true, a webhook's host must resolve only to
// globally reachable unicast addresses: not loopback, private, shared (CGN), link-local,
// unique-local, site-local, multicast, unspecified, documentation, benchmarking or reserved
// ranges, in IPv4 or IPv6, including IPv4 addresses embedded in IPv6 (IPv4-mapped, NAT64,
// 6to4). The check runs when a webhook is created and again before every delivery attempt,
// which then connects to the very address it checked (infra/webhooks/webhook-post.ts), so a
// DNS answer that changes between the check and the connection (rebinding) cannot move it.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** One address a host name resolved to. */
export type ResolvedAddress = { address: string; family: 4 | 6 };

/** Resolves a host name to its addresses (the system resolver by default; tests give a stub). */
export type HostResolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** The address policy: `allowPrivate` (WEBHOOK_ALLOW_PRIVATE) lets webhooks reach any address. */
export type WebhookAddressPolicy = { allowPrivate: boolean; resolve: HostResolver };

/** The operating system's resolver (getaddrinfo: /etc/hosts, then DNS). */
export const systemResolver: HostResolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => ({
    address: a.address,
    family: a.family === 6 ? 6 : 4,
  }));

/** The policy of a process that has not opted in to private addresses. */
export const DEFAULT_ADDRESS_POLICY: WebhookAddressPolicy = { allowPrivate: false, resolve: systemResolver };

/** A webhook URL whose host may not be reached, or cannot be resolved; the message names why. */
export class WebhookTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookTargetError';
  }
}

// IANA's special-purpose registries (RFC 6890 and successors): what is not globally reachable.
// Ordered most specific first where ranges nest.
const IPV4_RANGES: readonly (readonly [string, number, string])[] = [
  ['0.0.0.0', 32, 'unspecified'],
  ['0.0.0.0', 8, 'reserved ("this network")'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared (carrier-grade NAT)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved (IETF protocol assignments)'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved (6to4 relay anycast)'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['255.255.255.255', 32, 'broadcast'],
  ['240.0.0.0', 4, 'reserved'],
];

const IPV6_RANGES: readonly (readonly [string, number, string])[] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b:1::', 48, 'reserved (local-use NAT64)'],
  ['100::', 64, 'reserved (discard-only)'],
  ['2001:db8::', 32, 'documentation'],
  ['2001::', 23, 'reserved (IETF protocol assignments)'],
  ['3fff::', 20, 'documentation'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

function ipv4ToInt(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/** An IPv6 address as a 128-bit integer (the text is known to be valid IPv6). */
function ipv6ToBigInt(address: string): bigint {
  let text = address.split('%')[0]!.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted !== null) {
    const v4 = ipv4ToInt(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...zeros, ...tailGroups].reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

const v4Ranges = IPV4_RANGES.map(([base, bits, kind]) => ({ base: ipv4ToInt(base), bits, kind }));
const v6Ranges = IPV6_RANGES.map(([base, bits, kind]) => ({ base: ipv6ToBigInt(base), bits: BigInt(bits), kind }));

function v4Kind(value: number): string | null {
  for (const range of v4Ranges) {
    const mask = range.bits === 0 ? 0 : (0xffffffff << (32 - range.bits)) >>> 0;
    if (((value & mask) >>> 0) === ((range.base & mask) >>> 0)) return range.kind;
  }
  return null;
}

const inPrefix = (value: bigint, base: bigint, bits: bigint) => value >> (128n - bits) === base >> (128n - bits);

const V4_MAPPED = ipv6ToBigInt('::ffff:0:0');
const V4_COMPATIBLE = 0n;
const NAT64 = ipv6ToBigInt('64:ff9b::');
const SIX_TO_FOUR = ipv6ToBigInt('2002::');
const GLOBAL_UNICAST = ipv6ToBigInt('2000::');

function v6Kind(value: bigint): string | null {
  // an IPv4 address inside an IPv6 one is judged as that IPv4 address
  const embedded = (v4: bigint, label: string) => {
    const kind = v4Kind(Number(v4));
    return kind === null ? null : `${label} ${kind}`;
  };
  if (inPrefix(value, V4_MAPPED, 96n)) return embedded(value & 0xffffffffn, 'IPv4-mapped');
  if (inPrefix(value, NAT64, 96n)) return embedded(value & 0xffffffffn, 'NAT64');
  if (inPrefix(value, SIX_TO_FOUR, 16n)) return embedded((value >> 80n) & 0xffffffffn, '6to4');
  for (const range of v6Ranges) {
    if (inPrefix(value, range.base, range.bits)) return range.kind;
  }
  if (inPrefix(value, V4_COMPATIBLE, 96n)) return 'reserved (IPv4-compatible)';
  if (!inPrefix(value, GLOBAL_UNICAST, 3n)) return 'reserved (outside global unicast 2000::/3)';
  return null;
}

/**
 * Why an IP address is not globally reachable ("loopback", "private", "IPv4-mapped loopback"…),
 * or null when it is. Text that is not an IP address is "not an IP address".
 */
export function nonGlobalKind(address: string): string | null {
  switch (isIP(address.split('%')[0]!)) {
    case 4:
      return v4Kind(ipv4ToInt(address));
    case 6:
      return v6Kind(ipv6ToBigInt(address));
    default:
      return 'not an IP address';
  }
}

/** The host of an http(s) URL without IPv6 brackets; the WHATWG parser already normalised it (2130706433 → 127.0.0.1). */
export function urlHost(url: string | URL): string {
  const { hostname } = typeof url === 'string' ? new URL(url) : url;
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

const OPT_IN = 'webhooks may only reach public addresses (WEBHOOK_ALLOW_PRIVATE=true lifts this)';

/**
 * Resolves a webhook URL's host once and checks every address it resolved to against the
 * policy; returns the address to connect to (the first). Throws WebhookTargetError naming the
 * problem: a host that does not resolve, or one that resolves to a non-global address (the
 * address itself is named only when it was written in the URL, so the error does not reveal
 * internal DNS).
 */
export async function resolveWebhookTarget(url: string | URL, policy: WebhookAddressPolicy): Promise<ResolvedAddress> {
  const host = urlHost(url);
  const literal = isIP(host);
  let addresses: readonly ResolvedAddress[];
  if (literal !== 0) {
    addresses = [{ address: host, family: literal === 6 ? 6 : 4 }];
  } else {
    addresses = await policy.resolve(host).catch(() => []);
    if (addresses.length === 0) throw new WebhookTargetError(`host "${host}" does not resolve`);
  }
  if (!policy.allowPrivate) {
    for (const { address } of addresses) {
      const kind = nonGlobalKind(address);
      if (kind === null) continue;
      throw new WebhookTargetError(
        literal !== 0
          ? `${host} is not a public address (${kind}); ${OPT_IN}`
          : `host "${host}" resolves to an address that is not public (${kind}); ${OPT_IN}`,
      );
    }
  }
  return addresses[0]!;
}

/**
 * Checks a webhook URL when it is registered: with private addresses allowed nothing is
 * resolved (any host is fine, and nothing is looked up for a URL that is only stored); else
 * as before each delivery.
 */
export async function checkWebhookUrl(url: string, policy: WebhookAddressPolicy): Promise<void> {
  if (policy.allowPrivate) return;
  await resolveWebhookTarget(url, policy);
}
