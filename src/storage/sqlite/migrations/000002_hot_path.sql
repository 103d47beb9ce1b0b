-- duro schema, version 2 (SQLite). Queues are claimed in insertion order (rowid): two indexes
-- hold only ENQUEUED rows, in the order each kind of queue claims them (every index ends with
-- the rowid), so a claim reads the rows it takes and no others however long the queue is. The
-- index of queue states no longer holds workflows that are on no queue.
DROP INDEX workflow_status_queued;
CREATE INDEX workflow_status_queued ON workflow_status (queue_name, status, priority, created_at)
  WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED') AND queue_name IS NOT NULL;
CREATE INDEX workflow_status_fifo ON workflow_status (queue_name) WHERE status = 'ENQUEUED';
CREATE INDEX workflow_status_by_priority ON workflow_status (queue_name, priority) WHERE status = 'ENQUEUED';
