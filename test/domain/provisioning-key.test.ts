// Provisioning key decider: given/when/then.
import test from 'ava';
import {
  assertKeyUsable,
  decideProvisioningKey,
  evolveProvisioningKey,
  initialProvisioningKeyState,
} from '../../domain/provisioning-key/decider.ts';
import type { ProvisioningKeyEvent } from '../../domain/provisioning-key/events.ts';
import { DomainError } from '../../domain/errors.ts';

const given = (...events: ProvisioningKeyEvent[]) =>
  events.reduce(evolveProvisioningKey, initialProvisioningKeyState());
const created: ProvisioningKeyEvent = {
  type: 'provisioning_key.created',
  timestamp: '2026-11-01T00:00:00.000Z',
  data: { fleet_id: 'f', description: null, expires_at: '2026-12-01T00:00:00.000Z', max_devices: 2 },
};

test('create: a new key is created with its limits', (t) => {
  t.deepEqual(
    decideProvisioningKey({ type: 'create_provisioning_key', now: created.timestamp, ...created.data }, given()),
    [created],
  );
});

test('revoke: an active key is revoked once; revoking again changes nothing', (t) => {
  const events = decideProvisioningKey({
    type: 'revoke_provisioning_key',
    now: '2026-11-02T00:00:00.000Z',
    reason: 'leaked',
  }, given(created));
  t.is(events[0]?.type, 'provisioning_key.revoked');
  t.deepEqual(
    decideProvisioningKey(
      { type: 'revoke_provisioning_key', now: '2026-11-03T00:00:00.000Z', reason: null },
      given(created, ...events),
    ),
    [],
  );
});

test('usable: revoked and expired keys may not provision', (t) => {
  t.notThrows(() => assertKeyUsable(given(created), '2026-11-15T00:00:00.000Z'));
  t.is(
    t.throws(() => assertKeyUsable(given(created), '2026-12-01T00:00:00.000Z'), { instanceOf: DomainError })?.code,
    'provisioning_key_expired',
  );
  const revoked = given(created, {
    type: 'provisioning_key.revoked',
    timestamp: '2026-11-02T00:00:00.000Z',
    data: { reason: null },
  });
  t.is(
    t.throws(() => assertKeyUsable(revoked, '2026-11-03T00:00:00.000Z'), { instanceOf: DomainError })?.code,
    'provisioning_key_revoked',
  );
});
