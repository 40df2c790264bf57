-- Secret values (issue #15): the event log keeps a keyed hash of every environment value and
-- secret config value (`hmac-sha256:<key id>:<hex>`, README "Secrets"); the values a device
-- must receive live here, outside the log, so that an admin can erase one (crypto-shredding:
-- the value goes, the log keeps only its hash). One row per hash: the same value under the same
-- key is one row, whichever targets use it. An erased row keeps its hash and when it was erased.
CREATE TABLE secret_values (
  hash        text        PRIMARY KEY CHECK (hash ~ '^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$'),
  value       jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- set again when a target brings an erased value back
  updated_at  timestamptz NOT NULL DEFAULT now(),
  erased_at   timestamptz,
  CHECK ((value IS NULL) = (erased_at IS NOT NULL))
);
