-- The sharding plan (docs/SCALING.md, issue #19): the event log is distributed by aggregate_id,
-- and a sharded store can enforce a unique key only when it includes the distribution column
-- (each shard checks its own rows). The events primary key gains aggregate_id, last, so a
-- lookup by event_id still uses it. `npm run check:distributable` checks every key of the
-- distributed tables against the plan.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (event_id, "timestamp", aggregate_id);
