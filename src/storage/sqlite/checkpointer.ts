/**
 * WAL checkpoints off the main thread. A commit in WAL mode appends to the log; now and then
 * the log must be copied back into the database file and synced (a checkpoint). SQLite does that
 * inside whichever commit crosses the threshold, which would stall the event loop for every
 * workflow of the process. Instead the writer turns automatic checkpoints off and this worker
 * thread, with its own connection, runs a PASSIVE checkpoint (it never blocks the writer) every
 * `intervalMs`. If the worker dies, the writer takes automatic checkpoints back.
 *
 * The log starts again from its beginning only when a commit begins with every frame copied
 * back, which a writer that never pauses does not give a passive checkpoint; so once the log
 * holds more than WAL_SIZE_LIMIT bytes, the worker follows up with a RESTART checkpoint, which
 * holds new commits (the writer waits them out between tries, see guard in store.ts) while it
 * copies the last frames, then lets the next commit start the log over. A reader holding a
 * snapshot (or another process's writer, busy with the file) keeps the log in use: after
 * waiting 100 ms for it, the worker tries again after 100 ms, then after twice as long each
 * time up to 5 s (400 ms once the log is past twice the limit), rather than holding up commits
 * for as long as that reader reads.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";

/** Bytes of write-ahead log past which a checkpoint restarts it, and to which the file is trimmed when restarted. */
export const WAL_SIZE_LIMIT = 32 * 1024 * 1024;

// Plain CommonJS run with `eval`, so it works from the compiled package and from TypeScript sources alike.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 10000");
const restartFrames = Math.floor(workerData.restartBytes / (db.pragma("page_size", { simple: true }) + 24));
let restartAfter = 0;
let backoff = 0;
const checkpoint = () => {
  try {
    const [{ log }] = db.pragma("wal_checkpoint(PASSIVE)");
    if (log <= restartFrames || Date.now() < restartAfter) return;
    db.pragma("busy_timeout = 100");
    try {
      const [{ busy }] = db.pragma("wal_checkpoint(RESTART)");
      // Past twice the limit (commits slow to sync under load kept it busy), the log is not left to grow for long.
      backoff = busy ? Math.min(Math.max(2 * backoff, 100), log > 2 * restartFrames ? 400 : 5000) : 0;
      restartAfter = Date.now() + backoff;
    } finally {
      db.pragma("busy_timeout = 10000");
    }
  } catch {}
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", () => { clearInterval(timer); checkpoint(); db.close(); parentPort.close(); });
`;

export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(writer: Database.Database, path: string, intervalMs = 100) {
    writer.pragma("wal_autocheckpoint = 0");
    const module = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER, { eval: true, workerData: { module, path, intervalMs, restartBytes: WAL_SIZE_LIMIT } });
    this.worker.unref();
    this.exited = new Promise((resolve) => {
      this.worker.once("exit", () => {
        if (writer.open) writer.pragma("wal_autocheckpoint = 1000");
        resolve();
      });
    });
    this.worker.on("error", () => undefined); // the exit handler restores automatic checkpoints
  }

  /** Runs a last checkpoint and stops the worker. */
  async close(): Promise<void> {
    this.worker.ref(); // an unref'd worker would let the process exit before it finished
    this.worker.postMessage("close");
    await this.exited;
  }
}
