-- duro schema, version 3 (SQLite). Two changes to the indexes of queued workflows.
--
-- Every queue is claimed by priority, then in insertion order (as the reference library: a queue
-- without priorityEnabled holds only priority 0, unless a client set one), so the index of
-- ENQUEUED rows in plain insertion order goes: one index fewer to fill on each enqueue.
DROP INDEX workflow_status_fifo;

-- A rate-limited claim counts the workflows its queue started within the period. No index served
-- that count, so each such claim read the whole table, finished workflows included. Rows enter
-- this one when they start (claimed, or inserted already running), not when they are enqueued.
CREATE INDEX workflow_status_started ON workflow_status (queue_name, started_at)
  WHERE queue_name IS NOT NULL AND started_at IS NOT NULL;
