-- Time order within a stream (hardening issue, finding 1): an event is never stamped before
-- the event of the version before it. The stream head keeps the latest timestamp of its
-- events next to its version and hash; the append (infra/event-store/event-store.ts) stamps
-- each new event no earlier than it, hashes what it stores, and its compare-and-set refuses
-- an event stamped before it, so the order is kept by the same row lock that keeps versions
-- gapless.
ALTER TABLE streams ADD COLUMN last_timestamp timestamptz;

COMMENT ON COLUMN streams.last_timestamp IS
  'the latest "timestamp" among the stream''s events (its last event''s, for events appended since migration 011); NULL when none is left';

-- Streams written before: the latest timestamp among their events (a log may already hold
-- events stamped before an earlier version's: replay reads each event at the latest instant
-- of its stream so far, see docs/REPLAY.md), else the one retention recorded for the events it
-- dropped. Rounded up to the millisecond, the precision the API stamps with.
WITH latest AS (
  SELECT aggregate_type, aggregate_id, max("timestamp") AS at FROM events GROUP BY 1, 2
  UNION ALL
  SELECT aggregate_type, aggregate_id, max(last_event_at) FROM retention_anchors GROUP BY 1, 2
), per_stream AS (
  SELECT aggregate_type, aggregate_id, max(at) AS at FROM latest GROUP BY 1, 2
)
UPDATE streams s
   SET last_timestamp = date_trunc('milliseconds', p.at)
         + CASE WHEN p.at > date_trunc('milliseconds', p.at) THEN interval '1 millisecond' ELSE interval '0' END
  FROM per_stream p
 WHERE s.aggregate_type = p.aggregate_type AND s.aggregate_id = p.aggregate_id;
