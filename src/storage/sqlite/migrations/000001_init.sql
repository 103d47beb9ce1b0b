-- duro schema, version 1 (SQLite). Times are epoch milliseconds from the application's clock.
CREATE TABLE workflow_status (
  workflow_id          TEXT PRIMARY KEY,
  status               TEXT NOT NULL,
  name                 TEXT NOT NULL,
  authenticated_user   TEXT,
  inputs               TEXT,
  output               TEXT,
  error                TEXT,
  serialization        TEXT NOT NULL,
  executor_id          TEXT,
  app_version          TEXT,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  started_at           INTEGER,
  completed_at         INTEGER,
  recovery_attempts    INTEGER NOT NULL DEFAULT 0,
  queue_name           TEXT,
  priority             INTEGER NOT NULL DEFAULT 0,
  deduplication_id     TEXT,
  partition_key        TEXT,
  timeout_ms           INTEGER,
  deadline_epoch_ms    INTEGER,
  delay_until_epoch_ms INTEGER,
  parent_workflow_id   TEXT,
  forked_from          TEXT,
  was_forked_from      INTEGER NOT NULL DEFAULT 0,
  owner_token          TEXT
);
CREATE INDEX workflow_status_created_at ON workflow_status (created_at);
CREATE INDEX workflow_status_pending ON workflow_status (executor_id) WHERE status = 'PENDING';
CREATE INDEX workflow_status_queued ON workflow_status (queue_name, status, priority, created_at) WHERE status IN ('ENQUEUED', 'PENDING', 'DELAYED');
CREATE INDEX workflow_status_delayed ON workflow_status (delay_until_epoch_ms) WHERE status = 'DELAYED';
CREATE UNIQUE INDEX workflow_status_dedup ON workflow_status (queue_name, deduplication_id) WHERE deduplication_id IS NOT NULL;
CREATE INDEX workflow_status_parent ON workflow_status (parent_workflow_id) WHERE parent_workflow_id IS NOT NULL;
CREATE INDEX workflow_status_forked_from ON workflow_status (forked_from) WHERE forked_from IS NOT NULL;

CREATE TABLE operation_outputs (
  workflow_id       TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  function_id       INTEGER NOT NULL,
  function_name     TEXT NOT NULL,
  output            TEXT,
  error             TEXT,
  serialization     TEXT,
  child_workflow_id TEXT,
  started_at        INTEGER,
  completed_at      INTEGER,
  PRIMARY KEY (workflow_id, function_id)
) WITHOUT ROWID;

CREATE TABLE notifications (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id     TEXT NOT NULL UNIQUE,
  destination_id TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  topic          TEXT NOT NULL,
  message        TEXT NOT NULL,
  serialization  TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  consumed       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notifications_unconsumed ON notifications (destination_id, topic, seq) WHERE consumed = 0;

CREATE TABLE workflow_events (
  workflow_id   TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  key           TEXT NOT NULL,
  value         TEXT NOT NULL,
  serialization TEXT NOT NULL,
  PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;

CREATE TABLE workflow_events_history (
  workflow_id   TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  function_id   INTEGER NOT NULL,
  key           TEXT NOT NULL,
  value         TEXT NOT NULL,
  serialization TEXT NOT NULL,
  PRIMARY KEY (workflow_id, function_id, key)
) WITHOUT ROWID;

-- A stream value of NULL is the end marker written by closeStream.
CREATE TABLE streams (
  workflow_id   TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  key           TEXT NOT NULL,
  "offset"      INTEGER NOT NULL,
  function_id   INTEGER NOT NULL,
  value         TEXT,
  serialization TEXT,
  PRIMARY KEY (workflow_id, key, "offset")
) WITHOUT ROWID;

CREATE TABLE executors (
  executor_id  TEXT PRIMARY KEY,
  heartbeat_at INTEGER NOT NULL
);
