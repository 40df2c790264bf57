// Domain errors: a stable code the shell maps to a status, and a message for people.

/** Codes a decision can fail with. */
export type DomainErrorCode =
  | 'device_not_found'
  | 'device_already_registered'
  | 'device_inactive'
  | 'target_version_mismatch'
  | 'provisioning_key_not_found'
  | 'provisioning_key_revoked'
  | 'provisioning_key_expired'
  | 'provisioning_key_exists';

/** A command that the current state does not allow. */
export class DomainError extends Error {
  readonly code: DomainErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: DomainErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'DomainError';
    this.code = code;
    this.details = details;
  }
}
