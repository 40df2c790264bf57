-- When each target version reached its device, and over which transport (issue #18: the
-- lifecycle analytics split delivery and convergence times by transport). A delivery is not a
-- change of the device's state, so it is not an event: one row per device, target version and
-- transport, the first time only (`http`: the first 200 of a target-state poll carrying that
-- version; `mqtt`: the embedded broker writing the version's notice to the device's
-- connection). Mutable and small: a row per target change per transport, deleted by the
-- retention job once before the horizon (infra/retention/retention.ts).
CREATE TABLE target_deliveries (
  aggregate_id   text        NOT NULL,
  target_version integer     NOT NULL,
  transport      text        NOT NULL CHECK (transport IN ('http', 'mqtt')),
  delivered_at   timestamptz NOT NULL,
  PRIMARY KEY (aggregate_id, target_version, transport)
);
