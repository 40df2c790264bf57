-- Rows rewritten on every event (a device's read model, its stream head, a projection's state)
-- leave room on their page, so PostgreSQL can update them in place (a HOT update: no new
-- index entries, no page split) when no indexed column changes, which is the case for most
-- state reports. Applies to pages written from now on; VACUUM FULL rewrites older ones.
ALTER TABLE devices SET (fillfactor = 50);
ALTER TABLE streams SET (fillfactor = 70);
ALTER TABLE projection_states SET (fillfactor = 70);
