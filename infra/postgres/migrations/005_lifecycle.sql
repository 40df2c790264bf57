-- Lifecycle (issue #5): what the sweepers look for, kept as plain columns of the devices
-- read model so a sweep never has to open every device's state jsonb.

ALTER TABLE devices
  -- FOLD_VERSION (domain/device/evolve.ts) of the evolve that folded `state`; a row of
  -- another fold version is refolded from its events when next loaded
  ADD COLUMN fold_version integer NOT NULL DEFAULT 1,
  -- when the open reconciliation started (its target update); NULL when none is open
  ADD COLUMN reconciliation_since timestamptz,
  -- the folded connectivity says the device is lost (device.connection_lost, not yet restored)
  ADD COLUMN connection_lost boolean NOT NULL DEFAULT false;

-- Derived from `state` by the database itself, so every writer of the read model keeps them
-- right. Fires only when `state` is written; heartbeats (last_seen_at only) skip it.
CREATE FUNCTION devices_lifecycle_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.reconciliation_since := CASE
    WHEN NEW.state #>> '{reconciliation,status}' = 'open'
    THEN (NEW.state #>> '{reconciliation,started_at}')::timestamptz
  END;
  NEW.connection_lost := coalesce(NEW.state #>> '{connectivity,status}' = 'lost', false);
  RETURN NEW;
END
$$;

CREATE TRIGGER devices_lifecycle_columns BEFORE INSERT OR UPDATE OF state ON devices
  FOR EACH ROW EXECUTE FUNCTION devices_lifecycle_columns();

-- The reconciliation sweeper: open reconciliations past their deadline. Few rows, and the
-- column changes only when a reconciliation opens or closes.
CREATE INDEX devices_reconciliation_since_idx ON devices (reconciliation_since)
  WHERE reconciliation_since IS NOT NULL;

-- The connectivity sweeper filters active, connected devices by last contact. No index on
-- last_seen_at on purpose: every heartbeat writes it, and an index there would make each
-- one update the indexes too; a sweep every SWEEP_INTERVAL scans the table instead.
