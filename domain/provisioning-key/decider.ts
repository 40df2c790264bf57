// The provisioning key decider: state, evolve, decide, and whether a key may provision now.
import { DomainError } from '../errors.ts';
import type { ProvisioningKeyEvent } from './events.ts';

/** A provisioning key's folded state. */
export type ProvisioningKeyState =
  | { status: 'none'; version: 0 }
  | {
    status: 'active' | 'revoked';
    fleet_id: string;
    description: string | null;
    expires_at: string | null;
    max_devices: number | null;
    created_at: string;
    revoked_at: string | null;
    version: number;
  };

export const initialProvisioningKeyState = (): ProvisioningKeyState => ({ status: 'none', version: 0 });

/** Applies one event. */
export function evolveProvisioningKey(state: ProvisioningKeyState, event: ProvisioningKeyEvent): ProvisioningKeyState {
  const version = state.version + 1;
  switch (event.type) {
    case 'provisioning_key.created':
      return { status: 'active', ...event.data, created_at: event.timestamp, revoked_at: null, version };
    case 'provisioning_key.revoked':
      if (state.status === 'none') return { ...state, version } as ProvisioningKeyState;
      return { ...state, status: 'revoked', revoked_at: event.timestamp, version };
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
}

export type CreateProvisioningKey = {
  type: 'create_provisioning_key';
  now: string;
  fleet_id: string;
  description: string | null;
  expires_at: string | null;
  max_devices: number | null;
};
export type RevokeProvisioningKey = { type: 'revoke_provisioning_key'; now: string; reason: string | null };

/** Decides the events of a key command. Revoking a revoked key changes nothing. */
export function decideProvisioningKey(
  command: CreateProvisioningKey | RevokeProvisioningKey,
  state: ProvisioningKeyState,
): ProvisioningKeyEvent[] {
  switch (command.type) {
    case 'create_provisioning_key': {
      if (state.status !== 'none') throw new DomainError('provisioning_key_exists', 'provisioning key already exists');
      const { type: _t, now, ...data } = command;
      return [{ type: 'provisioning_key.created', timestamp: now, data }];
    }
    case 'revoke_provisioning_key':
      if (state.status === 'none') throw new DomainError('provisioning_key_not_found', 'unknown provisioning key');
      if (state.status === 'revoked') return [];
      return [{ type: 'provisioning_key.revoked', timestamp: command.now, data: { reason: command.reason } }];
    default: {
      const unreachable: never = command;
      return unreachable;
    }
  }
}

/** Throws unless the key may provision a device at `now` (device count is checked by the store). */
export function assertKeyUsable(state: ProvisioningKeyState, now: string): void {
  if (state.status === 'none') throw new DomainError('provisioning_key_not_found', 'unknown provisioning key');
  if (state.status === 'revoked') {
    throw new DomainError('provisioning_key_revoked', 'provisioning key has been revoked');
  }
  if (state.expires_at !== null && Date.parse(state.expires_at) <= Date.parse(now)) {
    throw new DomainError('provisioning_key_expired', `provisioning key expired at ${state.expires_at}`);
  }
}
