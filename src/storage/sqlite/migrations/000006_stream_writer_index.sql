-- duro schema, version 6 (SQLite). Streams indexed by the operation that wrote each value.
--
-- A workflow's writeStream is written once per operation, so each write first looks for a value
-- its (workflow, key, function ID) already wrote. Without this index that looked at every value
-- of the stream: writes to one key slowed as it grew (0.67 ms each at first, 1.32 ms after
-- 20,000 writes).
CREATE INDEX streams_writer ON streams (workflow_id, key, function_id);
