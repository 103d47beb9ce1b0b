-- duro schema, version 6 (PostgreSQL). Which application version is the newest one running.
--
-- A workflow of no app version (a client's enqueue or fork) is run by the newest version that a
-- live executor runs, as in the reference library ("NULL means the latest version runs it"), so
-- that during a rolling deploy such work does not land on the old code. Each executor's
-- heartbeat says its version, and each version is stamped when an executor first runs it.
ALTER TABLE executors ADD COLUMN app_version TEXT;
CREATE TABLE app_versions (
  app_version   TEXT PRIMARY KEY,
  first_seen_at BIGINT NOT NULL
);
