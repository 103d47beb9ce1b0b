-- duro schema, version 7 (PostgreSQL). Streams indexed by the operation that wrote each value.
--
-- A workflow's writeStream is written once per operation, so each write first looks for a value
-- its (workflow, key, function ID) already wrote. Without this index that looked at every value
-- of the stream: writes to one key slowed as it grew (1.6 ms each for the first 1,000 writes,
-- 2.3 ms by the sixth thousand, 4 ms by the twentieth).
CREATE INDEX streams_writer ON streams (workflow_id, key, function_id);
