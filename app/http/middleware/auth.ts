// Authentication: a bearer secret resolves to one principal; each route says which kind
// it accepts. 401: no or unknown credentials. 403: known credentials, wrong kind or not allowed.
import type { Context } from 'koa';
import type { ProvisioningKeyState } from '../../../domain/provisioning-key/decider.ts';
import { ADMIN_TOKEN_PREFIX, PROVISIONING_KEY_PREFIX } from '../../../infra/devices/credentials.ts';
import type { Actor } from '../../../domain/recorded-event.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';

/** Who is calling. */
export type Principal =
  | { type: 'admin'; id: string; name: string }
  | { type: 'device'; uuid: string }
  | { type: 'provisioning_key'; id: string; state: ProvisioningKeyState };

const unauthorized = (message: string) =>
  new HttpError(401, 'unauthorized', message, undefined, { 'WWW-Authenticate': 'Bearer realm="devicetrail"' });

/** The bearer secret of a request; throws 401 when missing or malformed. */
export function bearerSecret(ctx: Context): string {
  const header = ctx.get('Authorization');
  if (header === '') throw unauthorized('missing Authorization header (expected "Bearer <token>")');
  const match = /^Bearer ([\x21-\x7e]{1,512})$/.exec(header);
  if (match === null) throw unauthorized('malformed Authorization header (expected "Bearer <token>")');
  return match[1]!;
}

/** Resolves the caller from the bearer secret's prefix and a hash lookup; 401 when unknown. */
export async function authenticate(ctx: Context, deps: AppDeps): Promise<Principal> {
  const cached = ctx.state['principal'] as Principal | undefined;
  if (cached !== undefined) return cached;
  const secret = bearerSecret(ctx);
  let principal: Principal | null = null;
  if (secret.startsWith(ADMIN_TOKEN_PREFIX)) {
    const token = await deps.adminTokens.find(secret);
    if (token !== null) principal = { type: 'admin', ...token };
  } else if (secret.startsWith(PROVISIONING_KEY_PREFIX)) {
    const key = await deps.provisioningKeys.findBySecret(secret);
    if (key !== null) principal = { type: 'provisioning_key', id: key.id, state: key.state };
  } else {
    const uuid = await deps.deviceKeys.findDevice(secret);
    if (uuid !== null) principal = { type: 'device', uuid };
  }
  if (principal === null) throw unauthorized('unknown or revoked credentials');
  ctx.state['principal'] = principal;
  return principal;
}

const forbidden = (expected: string, got: Principal['type']) =>
  new HttpError(
    403,
    'forbidden',
    `this endpoint needs ${expected}; the credentials given are a ${got.replace('_', ' ')}`,
  );

/** The admin calling, or 401/403. */
export async function requireAdmin(ctx: Context, deps: AppDeps): Promise<Principal & { type: 'admin' }> {
  const p = await authenticate(ctx, deps);
  if (p.type !== 'admin') throw forbidden('an admin token', p.type);
  return p;
}

/** The device calling, or 401/403. */
export async function requireDevice(ctx: Context, deps: AppDeps): Promise<Principal & { type: 'device' }> {
  const p = await authenticate(ctx, deps);
  if (p.type !== 'device') throw forbidden('a device key', p.type);
  return p;
}

/** The provisioning key calling, or 401/403. */
export async function requireProvisioningKey(
  ctx: Context,
  deps: AppDeps,
): Promise<Principal & { type: 'provisioning_key' }> {
  const p = await authenticate(ctx, deps);
  if (p.type !== 'provisioning_key') throw forbidden('a provisioning key', p.type);
  return p;
}

/** The metadata actor for a principal. */
export function actorOf(principal: Principal): Actor {
  switch (principal.type) {
    case 'admin':
      return { type: 'admin', id: principal.id };
    case 'device':
      return { type: 'device', id: principal.uuid };
    case 'provisioning_key':
      return { type: 'provisioning_key', id: principal.id };
    default: {
      const unreachable: never = principal;
      return unreachable;
    }
  }
}
