-- duro schema, version 5 (SQLite). Wake-ups across processes sharing the file.
--
-- PostgreSQL tells other processes what a commit may have woken with NOTIFY; here each write
-- transaction that may have woken something appends the same keys (joined by newlines) to this log,
-- and the other processes, on seeing the file change, read what was appended since they last
-- looked. So a commit elsewhere re-checks only the waits it concerns, not every wait in the
-- process. A writer that does not log (another tool, an older duro) is seen by the safety poll.
CREATE TABLE wake_log (
  seq  INTEGER PRIMARY KEY,
  keys TEXT NOT NULL
);
