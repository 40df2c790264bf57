-- Telemetry is not state (issue #15): a device's metrics (cpu, memory, storage, temperature,
-- uptime, its process and network tables) go to this time series, not to the event log. A
-- report whose only changes are metrics appends no event; every sample lands here. Day
-- partitions by the server's arrival time, dropped whole after METRICS_RETENTION_DAYS (never
-- rows); the series is mutable telemetry, not history, so it has no hash chain and no
-- immutability triggers.
CREATE TABLE device_metrics (
  device_uuid        text             NOT NULL,
  -- when the server took the report (its clock; the device's may be wrong)
  reported_at        timestamptz      NOT NULL,
  cpu_usage          double precision,
  cpu_temp           double precision,
  memory_usage       double precision,
  memory_total       double precision,
  storage_usage      double precision,
  storage_total      double precision,
  temperature        double precision,
  uptime             double precision,
  -- the agent's tables as sent, within the edge's limits (app/http/device-reports.ts)
  top_processes      jsonb,
  network_interfaces jsonb
) PARTITION BY RANGE (reported_at);

-- one device's series over a window, and its latest sample
CREATE INDEX device_metrics_device_idx ON device_metrics (device_uuid, reported_at);

-- A day partition of a telemetry table (device_metrics, device_logs): <table>_YYYYMMDD for
-- [day, day + 1) UTC. Idempotent; concurrent callers are serialised on an advisory lock per
-- table. No horizon check: telemetry rows are stamped with the server's clock, so only
-- today's (and, ahead of time, the next days') partitions are ever asked for.
CREATE FUNCTION ensure_telemetry_partition(parent text, day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  name text := parent || '_' || to_char(day, 'YYYYMMDD');
BEGIN
  IF parent NOT IN ('device_metrics', 'device_logs') THEN
    RAISE EXCEPTION 'not a telemetry table: %', parent USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF to_regclass(name) IS NOT NULL THEN
    RETURN name;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('devicetrail.telemetry_partitions.' || parent));
  IF EXISTS (SELECT 1 FROM pg_class WHERE relname = name AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = parent::regclass)) THEN
    RETURN name;
  END IF;
  BEGIN
    EXECUTE format(
      'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
      name, parent, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
  EXCEPTION WHEN duplicate_table THEN
    NULL; -- created by a concurrent transaction: fine
  END;
  RETURN name;
END
$$;
