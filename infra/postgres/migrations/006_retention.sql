-- Retention (issue #6): whole day partitions older than the horizon are dropped, never rows.
-- Before they go, every aggregate with events in them gets a horizon snapshot (table
-- `snapshots`, migration 003) and an anchor here: the version and chain hash its remaining
-- events continue from, so `npm run replay -- verify` still checks every link that is left.

-- The retention horizon: history before it is no longer kept; replay refuses instants before it.
-- One row (id is always true). Moves forward only.
CREATE TABLE retention_state (
  id             boolean     PRIMARY KEY DEFAULT true CHECK (id),
  horizon        timestamptz NOT NULL,
  retention_days integer     NOT NULL CHECK (retention_days > 0),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Where an aggregate's remaining chain starts after retention: event `version` (dropped, or
-- about to be) had hash `hash`, so event version + 1 must chain from it. One row per
-- aggregate per retention run that dropped some of its events.
CREATE TABLE retention_anchors (
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  version        bigint      NOT NULL CHECK (version > 0),
  hash           text        NOT NULL,
  -- the latest "timestamp" among events 1..version
  last_event_at  timestamptz NOT NULL,
  horizon        timestamptz NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (aggregate_type, aggregate_id, version)
);

-- What retention dropped, and where the archive (if any) is: the audit trail of the log's own deletions.
CREATE TABLE dropped_partitions (
  id             bigserial   PRIMARY KEY,
  name           text        NOT NULL,
  day            date        NOT NULL,
  rows           bigint      NOT NULL,
  bytes          bigint      NOT NULL,
  horizon        timestamptz NOT NULL,
  -- gzip NDJSON file and the sha-256 of its bytes; NULL when ARCHIVE_DIR was not set
  archive_path   text,
  archive_sha256 text,
  dropped_at     timestamptz NOT NULL DEFAULT now()
);

-- An event before the horizon would recreate a dropped day and hold a history the horizon
-- snapshots do not include: refuse to create partitions for days before the horizon.
CREATE OR REPLACE FUNCTION ensure_events_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  name text := 'events_' || to_char(day, 'YYYYMMDD');
  horizon_day date;
BEGIN
  IF to_regclass(name) IS NOT NULL THEN
    RETURN name;
  END IF;
  SELECT (horizon AT TIME ZONE 'UTC')::date INTO horizon_day FROM retention_state;
  IF horizon_day IS NOT NULL AND day < horizon_day THEN
    RAISE EXCEPTION 'events of % are before the retention horizon %: that history is no longer kept', day, horizon_day
      USING ERRCODE = 'check_violation';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('devicetrail.events_partitions'));
  -- a real query, not to_regclass: the syscache may not yet see a table that the
  -- previous lock holder just committed
  IF EXISTS (SELECT 1 FROM pg_class WHERE relname = name AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'events'::regclass)) THEN
    RETURN name;
  END IF;
  BEGIN
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
      name, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
    EXECUTE format(
      'CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change()',
      name);
  EXCEPTION WHEN duplicate_table THEN
    NULL; -- created by a concurrent transaction: fine
  END;
  RETURN name;
END
$$;
