-- Device logs (issue #15): what a device's containers and agent print, uploaded by the device
-- (POST /api/v1/device/:uuid/logs) and kept apart from the event log. Day partitions by the
-- server's arrival time (a device's clock may be years off), dropped whole after
-- LOGS_RETENTION_DAYS. Reads filter on the device's own `timestamp`.
CREATE SEQUENCE device_logs_id_seq;

CREATE TABLE device_logs (
  id            bigint      NOT NULL DEFAULT nextval('device_logs_id_seq'),
  device_uuid   text        NOT NULL,
  received_at   timestamptz NOT NULL,
  -- the device's time of the line; the arrival time when it sent none
  "timestamp"   timestamptz NOT NULL,
  -- debug, info, warn or error
  level         text        NOT NULL,
  source_type   text,
  source_name   text,
  service_name  text,
  service_id    integer,
  container_id  text,
  is_stderr     boolean     NOT NULL DEFAULT false,
  is_system     boolean     NOT NULL DEFAULT false,
  message       text        NOT NULL,
  -- the message was longer than the line limit and was cut to it
  truncated     boolean     NOT NULL DEFAULT false,
  -- the writing transaction: a live tail reads only rows of finished transactions, in
  -- (transaction_id, id) order, so it never passes a row that commits later (DESIGN
  -- "Listeners and feeds"; the same rule as the event feed)
  transaction_id xid8       NOT NULL DEFAULT pg_current_xact_id()
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE device_logs_id_seq OWNED BY device_logs.id;

-- one device's lines over a window (GET /devices/:uuid/logs, replay --logs)
CREATE INDEX device_logs_device_time_idx ON device_logs (device_uuid, "timestamp", id);
-- the live tail's cursor
CREATE INDEX device_logs_device_tail_idx ON device_logs (device_uuid, transaction_id, id);
