-- The event log: one partitioned, append-only table, and the per-stream version table
-- that gives appends their optimistic concurrency.

CREATE SEQUENCE events_global_position_seq AS bigint;

CREATE TABLE events (
  event_id          uuid        NOT NULL,
  event_type        text        NOT NULL,
  aggregate_type    text        NOT NULL,
  aggregate_id      text        NOT NULL,
  aggregate_version bigint      NOT NULL CHECK (aggregate_version > 0),
  global_position   bigint      NOT NULL DEFAULT nextval('events_global_position_seq'),
  transaction_id    xid8        NOT NULL DEFAULT pg_current_xact_id(),
  data              jsonb       NOT NULL,
  metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb,
  "timestamp"       timestamptz NOT NULL,
  source            text        NOT NULL,
  -- sha-256 (hex) over this event's canonical content and the previous event's hash
  -- of the same aggregate: see infra/event-hash.ts.
  hash              text        NOT NULL,
  PRIMARY KEY (event_id, "timestamp")
) PARTITION BY RANGE ("timestamp");

ALTER SEQUENCE events_global_position_seq OWNED BY events.global_position;

CREATE INDEX events_aggregate_idx ON events (aggregate_type, aggregate_id, aggregate_version);
CREATE INDEX events_type_time_idx ON events (event_type, "timestamp");
CREATE INDEX events_time_idx ON events ("timestamp");
CREATE INDEX events_feed_idx ON events (transaction_id, global_position);

-- Optimistic concurrency: an append compares-and-sets `version` here, in the same
-- transaction as its INSERT. A unique index on the partitioned table could not do it,
-- because it would have to include "timestamp".
CREATE TABLE streams (
  aggregate_type text        NOT NULL,
  aggregate_id   text        NOT NULL,
  version        bigint      NOT NULL CHECK (version >= 0),
  last_hash      text        NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Events are immutable: the database itself refuses UPDATE, DELETE and TRUNCATE.
-- Retention removes whole partitions (DETACH + DROP), which these triggers allow.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'events are immutable: % is not allowed on %', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation',
          HINT = 'append a new event instead; retention drops whole day partitions';
END
$$;

CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON events
  FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

-- One partition per UTC day, named events_YYYYMMDD. Safe to call concurrently.
-- TRUNCATE triggers are not inherited by partitions, so each partition gets its own.
CREATE FUNCTION ensure_events_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  name text := 'events_' || to_char(day, 'YYYYMMDD');
BEGIN
  IF to_regclass(name) IS NOT NULL THEN
    RETURN name;
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

-- The seed's query: SELECT * FROM get_aggregate_events('device', '<uuid>', NULL);
CREATE FUNCTION get_aggregate_events(p_aggregate_type text, p_aggregate_id text, p_since timestamptz)
RETURNS SETOF events LANGUAGE sql STABLE AS $$
  SELECT * FROM events
   WHERE aggregate_type = p_aggregate_type
     AND aggregate_id = p_aggregate_id
     AND (p_since IS NULL OR "timestamp" >= p_since)
   ORDER BY aggregate_version
$$;
