-- The admin console (issue #17).
--
-- A console session is what a browser holds after signing in with an admin token: the
-- cookie carries a random secret, stored here only as its sha-256 hash. A session is valid
-- while it has not ended (sign out), has not expired, and its admin token is not revoked,
-- so revoking a token ends every session opened with it.
CREATE TABLE console_sessions (
  id             uuid        PRIMARY KEY,
  secret_hash    bytea       NOT NULL UNIQUE,
  admin_token_id uuid        NOT NULL REFERENCES admin_tokens (id),
  created_at     timestamptz NOT NULL,
  expires_at     timestamptz NOT NULL,
  ended_at       timestamptz,
  ip_address     text,
  user_agent     text
);
CREATE INDEX console_sessions_admin_token_idx ON console_sessions (admin_token_id);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Integrity checks started from the console or the API (POST /api/v1/integrity/checks): the
-- last result stays visible after the process that ran it is gone. `breaks` holds each
-- aggregate's first broken link (infra/event-store/verify.ts ChainBreak).
CREATE TABLE integrity_checks (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz,
  status      text        NOT NULL CHECK (status IN ('running', 'passed', 'failed', 'error')),
  started_by  text        NOT NULL,
  aggregates  integer,
  events      bigint,
  breaks      jsonb,
  error       text
);
