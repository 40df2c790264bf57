-- Inline read models, written in the same transaction as the events they fold,
-- and the credentials, which are never in events (only hashes, never the secret).

CREATE TABLE devices (
  uuid          text        PRIMARY KEY,
  device_name   text        NOT NULL,
  device_type   text        NOT NULL,
  fleet_id      text        NOT NULL,
  is_active     boolean     NOT NULL,
  in_sync       boolean     NOT NULL,
  drift_since   timestamptz,
  target_version integer    NOT NULL DEFAULT 0,
  -- the whole folded state (domain/device/state.ts), equal to folding the stream
  state         jsonb       NOT NULL,
  version       bigint      NOT NULL,
  registered_at timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  -- heartbeats (target-state polls) are not events: last_seen_at lives only here
  last_seen_at  timestamptz
);
CREATE INDEX devices_fleet_idx ON devices (fleet_id);
CREATE INDEX devices_drifting_idx ON devices (in_sync) WHERE NOT in_sync;

CREATE TABLE device_credentials (
  uuid       text  PRIMARY KEY,
  key_hash   bytea NOT NULL UNIQUE
);

CREATE TABLE provisioning_keys (
  id            uuid        PRIMARY KEY,
  key_hash      bytea       NOT NULL UNIQUE,
  fleet_id      text        NOT NULL,
  description   text,
  expires_at    timestamptz,
  max_devices   integer,
  devices_count integer     NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  state         jsonb       NOT NULL,
  version       bigint      NOT NULL
);

CREATE TABLE admin_tokens (
  id         uuid        PRIMARY KEY,
  name       text        NOT NULL,
  token_hash bytea       NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
