-- Real time: a wake-up notification per INSERT statement on events, durable checkpoints and
-- dead letters for EventListeners, projection state with its checkpoint, and webhooks.
-- Checkpoints are (transaction_id, global_position) pairs: see infra/event-feed.ts.

-- One notification per statement, not per row; payload-free (listeners re-read the feed).
-- NOTIFY is delivered at commit, and identical notifications in one transaction fold into one.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('devicetrail_events', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
  FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

CREATE TABLE listener_checkpoints (
  name             text        PRIMARY KEY,
  transaction_id   xid8        NOT NULL DEFAULT '0',
  global_position  bigint      NOT NULL DEFAULT 0,
  -- events after the checkpoint already handled, to keep each aggregate in version order:
  -- [[transaction_id, global_position], ...]
  ahead            jsonb       NOT NULL DEFAULT '[]'::jsonb,
  -- fencing token of the process holding the listener's lock; checkpoint writes check it
  owner            text,
  owner_since      timestamptz,
  events_processed bigint      NOT NULL DEFAULT 0,
  last_event_at    timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE listener_dead_letters (
  id              bigserial   PRIMARY KEY,
  listener_name   text        NOT NULL,
  event_id        uuid        NOT NULL,
  event_type      text        NOT NULL,
  aggregate_type  text        NOT NULL,
  aggregate_id    text        NOT NULL,
  global_position bigint      NOT NULL,
  -- the event as it was handed to the handlers, so redelivery survives retention
  event           jsonb       NOT NULL,
  error           text        NOT NULL,
  attempts        integer     NOT NULL,
  -- dead: waiting for an operator; redeliver: requested, the running listener retries it;
  -- redelivered: handled on redelivery; discarded: an operator gave up on it
  status          text        NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'redeliver', 'redelivered', 'discarded')),
  first_failed_at timestamptz NOT NULL DEFAULT now(),
  last_failed_at  timestamptz NOT NULL DEFAULT now(),
  resolved_at     timestamptz,
  UNIQUE (listener_name, event_id)
);
CREATE INDEX listener_dead_letters_open_idx ON listener_dead_letters (listener_name, status) WHERE status IN ('dead', 'redeliver');

-- Redelivery requests wake the listener that owns the dead letter.
CREATE FUNCTION listener_dead_letters_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.status = 'redeliver' THEN
    PERFORM pg_notify('devicetrail_redeliver', NEW.listener_name);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER listener_dead_letters_notify AFTER INSERT OR UPDATE OF status ON listener_dead_letters
  FOR EACH ROW EXECUTE FUNCTION listener_dead_letters_notify();

-- A projection is identified by its name and a hash of its definition (handled types,
-- handler source, version): a changed definition builds anew from the first event.
CREATE TABLE projections (
  name             text        NOT NULL,
  definition       text        NOT NULL,
  transaction_id   xid8        NOT NULL DEFAULT '0',
  global_position  bigint      NOT NULL DEFAULT 0,
  ahead            jsonb       NOT NULL DEFAULT '[]'::jsonb,
  -- bumped on every commit: writers compare-and-set it, so concurrent builders never
  -- apply an event twice
  revision         bigint      NOT NULL DEFAULT 0,
  events_processed bigint      NOT NULL DEFAULT 0,
  last_event_at    timestamptz,
  last_error       text,
  rebuilt_at       timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (name, definition)
);

CREATE TABLE projection_states (
  projection  text        NOT NULL,
  definition  text        NOT NULL,
  key         text        NOT NULL,
  state       jsonb       NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (projection, definition, key),
  FOREIGN KEY (projection, definition) REFERENCES projections (name, definition) ON DELETE CASCADE
);

CREATE TABLE webhooks (
  id           uuid        PRIMARY KEY,
  url          text        NOT NULL,
  event_types  text[]      NOT NULL CHECK (cardinality(event_types) > 0),
  -- the signing key: kept so deliveries can be signed, never returned after creation
  secret       text        NOT NULL,
  description  text,
  created_by   text        NOT NULL,
  created_at   timestamptz NOT NULL,
  deleted_at   timestamptz
);

CREATE TABLE webhook_deliveries (
  id               uuid        PRIMARY KEY,
  webhook_id       uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id         uuid        NOT NULL,
  event_type       text        NOT NULL,
  payload          jsonb       NOT NULL,
  -- pending: waiting for its next attempt; succeeded; failed: gave up after the last
  -- attempt; cancelled: the webhook was deleted first
  status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
  attempts         integer     NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  -- a worker's lease while it attempts the delivery (no transaction stays open meanwhile)
  locked_until     timestamptz,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_delivery_attempts (
  delivery_id   uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  attempt       integer     NOT NULL,
  attempted_at  timestamptz NOT NULL,
  duration_ms   integer     NOT NULL,
  status_code   integer,
  error         text,
  response_body text,
  PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION webhook_deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('devicetrail_webhook_deliveries', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER webhook_deliveries_notify AFTER INSERT ON webhook_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION webhook_deliveries_notify();
