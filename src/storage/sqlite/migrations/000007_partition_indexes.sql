-- duro schema, version 7 (SQLite). Partitioned queues indexed by partition.
--
-- A claim on a partitioned queue takes each partition's work in turn. Without these indexes each
-- partition's pick walked the queue's ENQUEUED rows until it met its own, and each count of a
-- partition's running workflows read all of the queue's: a queue of 4,000 partition keys with
-- two workflows each drained in 4.2 s, one of 2,000 in 1.6 s. Only rows with a partition key
-- are in them, so other queues' enqueues and claims pay nothing for them.
CREATE INDEX workflow_status_partition_queued ON workflow_status (queue_name, partition_key, priority)
  WHERE status = 'ENQUEUED' AND partition_key IS NOT NULL;
CREATE INDEX workflow_status_partition_running ON workflow_status (queue_name, partition_key)
  WHERE status = 'PENDING' AND partition_key IS NOT NULL;
