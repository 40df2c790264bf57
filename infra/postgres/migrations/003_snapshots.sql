-- Snapshots: an aggregate's folded state at a version, so replay at time T starts from
-- the newest snapshot whose events all happened at or before T instead of from event 1.
-- Written off the request path by the snapshotter (infra/replay-snapshotter.ts) every
-- SNAPSHOT_EVERY events, and by retention as of its horizon. A snapshot is derived data:
-- dropping the table loses speed, never history.

CREATE TABLE snapshots (
  aggregate_type  text        NOT NULL,
  aggregate_id    text        NOT NULL,
  -- the aggregate_version of the last event folded into `state` (events 1..version)
  version         bigint      NOT NULL CHECK (version > 0),
  -- domain FOLD_VERSION of the evolve that produced `state`; other fold versions are ignored,
  -- and kept side by side so instants of two releases never overwrite each other's rows
  fold_version    integer     NOT NULL,
  state           jsonb       NOT NULL,
  -- the latest "timestamp" among the folded events (the last event's, as timestamps ascend
  -- with versions): the snapshot answers for any instant at or after it
  last_event_at   timestamptz NOT NULL,
  -- the chain hash of event `version` (infra/event-hash.ts): ties the snapshot to the log
  last_event_hash text        NOT NULL,
  -- the latest timestamp among folded events caused by the device itself (its last sign of life)
  last_seen_at    timestamptz,
  -- sha-256 over last_event_hash and the canonical state: a snapshot that fails it is ignored
  hash            text        NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (aggregate_type, aggregate_id, fold_version, version)
);

-- "the newest valid snapshot at or before T" walks the primary key backwards from the
-- newest version and stops at the first row with last_event_at <= T.
