-- The secrets keys writing to this database (issue #15's markers name their key): each instance
-- records the id of its SECRETS_KEY at start and every 30 minutes, and warns when another id was
-- recorded lately. Instances that do not share one key make different markers for one value,
-- so a device would show drift it does not have (docs/OPERATIONS.md "The secrets key"). Only the
-- id is kept (the first 8 hex digits of a hash of the key), never the key.
CREATE TABLE secrets_keys (
  key_id         text        PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{8}$'),
  first_seen_at  timestamptz NOT NULL,
  last_seen_at   timestamptz NOT NULL
);
