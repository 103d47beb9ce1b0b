-- duro schema, version 1 (PostgreSQL). Times are epoch milliseconds from the application's clock.
-- Names are unqualified: the store runs this with search_path set to its schema.
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
  created_at           BIGINT NOT NULL,
  updated_at           BIGINT NOT NULL,
  started_at           BIGINT,
  completed_at         BIGINT,
  recovery_attempts    INTEGER NOT NULL DEFAULT 0,
  queue_name           TEXT,
  priority             INTEGER NOT NULL DEFAULT 0,
  deduplication_id     TEXT,
  partition_key        TEXT,
  timeout_ms           BIGINT,
  deadline_epoch_ms    BIGINT,
  delay_until_epoch_ms BIGINT,
  parent_workflow_id   TEXT,
  forked_from          TEXT,
  was_forked_from      BOOLEAN NOT NULL DEFAULT FALSE,
  owner_token          TEXT,
  -- Insertion order: FIFO among workflows enqueued in the same millisecond.
  seq                  BIGSERIAL
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
  started_at        BIGINT,
  completed_at      BIGINT,
  PRIMARY KEY (workflow_id, function_id)
);

CREATE TABLE notifications (
  seq            BIGSERIAL PRIMARY KEY,
  message_id     TEXT NOT NULL UNIQUE,
  destination_id TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  topic          TEXT NOT NULL,
  message        TEXT NOT NULL,
  serialization  TEXT NOT NULL,
  created_at     BIGINT NOT NULL,
  consumed       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX notifications_unconsumed ON notifications (destination_id, topic, seq) WHERE NOT consumed;

CREATE TABLE workflow_events (
  workflow_id   TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  key           TEXT NOT NULL,
  value         TEXT NOT NULL,
  serialization TEXT NOT NULL,
  PRIMARY KEY (workflow_id, key)
);

CREATE TABLE workflow_events_history (
  workflow_id   TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  function_id   INTEGER NOT NULL,
  key           TEXT NOT NULL,
  value         TEXT NOT NULL,
  serialization TEXT NOT NULL,
  PRIMARY KEY (workflow_id, function_id, key)
);

-- A stream value of NULL is the end marker written by closeStream.
CREATE TABLE streams (
  workflow_id   TEXT NOT NULL REFERENCES workflow_status (workflow_id) ON DELETE CASCADE,
  key           TEXT NOT NULL,
  "offset"      INTEGER NOT NULL,
  function_id   INTEGER NOT NULL,
  value         TEXT,
  serialization TEXT,
  PRIMARY KEY (workflow_id, key, "offset")
);

CREATE TABLE executors (
  executor_id  TEXT PRIMARY KEY,
  heartbeat_at BIGINT NOT NULL
);
