-- duro schema, version 2 (PostgreSQL). Queues are claimed in insertion order (seq): two indexes
-- hold only ENQUEUED rows, in the order each kind of queue claims them, so a claim reads the
-- rows it takes and no others however long the queue is. The index of queue states no longer
-- holds workflows that are on no queue.
DROP INDEX workflow_status_queued;
CREATE INDEX workflow_status_queued ON workflow_status (queue_name, status, priority, created_at)
  WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED') AND queue_name IS NOT NULL;
CREATE INDEX workflow_status_fifo ON workflow_status (queue_name, seq) WHERE status = 'ENQUEUED';
CREATE INDEX workflow_status_by_priority ON workflow_status (queue_name, priority, seq) WHERE status = 'ENQUEUED';

-- A step's record is written only while its workflow is PENDING on the writing executor (the
-- fencing test in the same statement), so the foreign key adds nothing but its cost: checking
-- it locks the workflow's row (FOR KEY SHARE), one more WAL record per step. Nothing deletes
-- workflows, so the cascade it carried has nothing to do.
ALTER TABLE operation_outputs DROP CONSTRAINT operation_outputs_workflow_id_fkey;
