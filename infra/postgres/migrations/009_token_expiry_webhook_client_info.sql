-- Hardening (issue #16, finding 12).
--
-- An admin token may expire (`npm run admin -- create-token --expires-in 30d`): past
-- expires_at it authenticates nobody, like a revoked token. NULL never expires (tokens made
-- before this migration, the bootstrap token, tokens created without --expires-in).
ALTER TABLE admin_tokens ADD COLUMN expires_at timestamptz;

-- A webhook's payload carries the caller's IP address and user agent (metadata.ip_address,
-- metadata.user_agent) only when the webhook asked for them at creation.
ALTER TABLE webhooks ADD COLUMN include_client_info boolean NOT NULL DEFAULT false;
