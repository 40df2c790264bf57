-- Peppered credential hashes (issue #16, finding 8): every stored secret (device keys,
-- provisioning keys, admin tokens, console sessions, MQTT passwords) is now kept as
-- HMAC-SHA-256 keyed with a server-side pepper that never enters the database
-- (CREDENTIAL_PEPPER, or DATA_DIR/credential-pepper; infra/devices/credentials.ts). Rows
-- written before hold a plain sha-256: `hash_scheme` says which, and a legacy row is rewritten
-- peppered the first time its secret authenticates. No default: every insert names its scheme.
ALTER TABLE device_credentials ADD COLUMN hash_scheme text NOT NULL DEFAULT 'sha256'
  CHECK (hash_scheme IN ('sha256', 'hmac-sha256'));
ALTER TABLE device_credentials ALTER COLUMN hash_scheme DROP DEFAULT;

ALTER TABLE provisioning_keys ADD COLUMN hash_scheme text NOT NULL DEFAULT 'sha256'
  CHECK (hash_scheme IN ('sha256', 'hmac-sha256'));
ALTER TABLE provisioning_keys ALTER COLUMN hash_scheme DROP DEFAULT;

ALTER TABLE admin_tokens ADD COLUMN hash_scheme text NOT NULL DEFAULT 'sha256'
  CHECK (hash_scheme IN ('sha256', 'hmac-sha256'));
ALTER TABLE admin_tokens ALTER COLUMN hash_scheme DROP DEFAULT;

ALTER TABLE console_sessions ADD COLUMN hash_scheme text NOT NULL DEFAULT 'sha256'
  CHECK (hash_scheme IN ('sha256', 'hmac-sha256'));
ALTER TABLE console_sessions ALTER COLUMN hash_scheme DROP DEFAULT;

ALTER TABLE mqtt_credentials ADD COLUMN hash_scheme text NOT NULL DEFAULT 'sha256'
  CHECK (hash_scheme IN ('sha256', 'hmac-sha256'));
ALTER TABLE mqtt_credentials ALTER COLUMN hash_scheme DROP DEFAULT;

COMMENT ON COLUMN device_credentials.hash_scheme IS
  'how key_hash was made: hmac-sha256 (keyed with the server''s pepper) or sha256 (before migration 017, upgraded on next use)';
