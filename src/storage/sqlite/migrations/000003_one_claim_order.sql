-- duro schema, version 3 (SQLite). Every queue is claimed by priority, then in insertion order
-- (as the reference library: a queue without priorityEnabled holds only priority 0, unless a
-- client set one), so the index of ENQUEUED rows in plain insertion order goes: one index fewer
-- to fill on each enqueue.
DROP INDEX workflow_status_fifo;
