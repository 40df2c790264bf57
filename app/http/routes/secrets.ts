// Admin endpoints for secret values (issue #15, item 3; README "Secrets"): which secrets a
// device's target holds (markers, whether their values are kept or erased, whether the device
// reports the same), and erasing a value (crypto-shredding: the log keeps only the marker). A
// value is never shown: rotate it by setting a new target.
import type { Context } from 'koa';
import type { Router } from '@koa/router';
import { isSecretMarker, secretMatches } from '../../../domain/device/secrets.ts';
import { eraseSecretValue, readSecretStatus } from '../../../infra/secrets/secret-values.ts';
import type { AppDeps } from '../deps.ts';
import { HttpError } from '../errors.ts';
import { uuidParam } from '../request.ts';

/** The `:hash` of a secrets path: a marker (`hmac-sha256:<key id>:<hex>`), else 400. */
function markerParam(ctx: Context): string {
  const hash = (ctx as unknown as { params: Record<string, string | undefined> }).params['hash'] ?? '';
  if (!isSecretMarker(hash)) {
    throw new HttpError(
      400,
      'invalid_request',
      'path parameter hash: must be a secret marker hmac-sha256:<8 hex key id>:<64 hex>',
    );
  }
  return hash;
}

/** Registers the secrets endpoints on the admin router (its guard authenticates). */
export function secretRoutes(router: Router, deps: AppDeps): void {
  router.get('/devices/:uuid/secrets', async (ctx: Context) => {
    const uuid = uuidParam(ctx);
    const row = await deps.devices.get(uuid);
    if (row === null) throw new HttpError(404, 'device_not_found', `no device ${uuid}`);
    const state = row.state.status === 'registered' ? row.state : null;
    const target = state?.target ?? null;
    const matches = target === null ? [] : secretMatches(target, state?.current ?? null);
    const status = await readSecretStatus(deps.pool, [...new Set(matches.map((m) => m.target))]);
    ctx.body = {
      uuid,
      target_version: target?.version ?? 0,
      key_id: deps.secrets.keyId,
      secrets: matches.map((match) => {
        const kept = status.get(match.target);
        return {
          ...match,
          status: kept === undefined ? 'missing' : kept.erased_at === null ? 'kept' : 'erased',
          erased_at: kept?.erased_at ?? null,
        };
      }),
    };
  });

  router.delete('/secrets/:hash', async (ctx: Context) => {
    const hash = markerParam(ctx);
    const erased = await eraseSecretValue(deps.pool, hash, deps.clock().toISOString());
    if (erased === null) throw new HttpError(404, 'secret_not_found', `no kept secret value ${hash}`);
    ctx.body = { ...erased, status: 'erased' };
  });
}
