/**
 * WAL checkpoints off the main thread. A commit in WAL mode appends to the log; now and then
 * the log must be copied back into the database file and synced (a checkpoint). SQLite does that
 * inside whichever commit crosses the threshold, which would stall the event loop for every
 * workflow of the process. Instead the writer turns automatic checkpoints off and this worker
 * thread, with its own connection, runs a PASSIVE checkpoint (it never blocks the writer) every
 * `intervalMs`. If the worker dies, the writer takes automatic checkpoints back.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";

// Plain CommonJS run with `eval`, so it works from the compiled package and from TypeScript sources alike.
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.module);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 10000");
const checkpoint = () => { try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {} };
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on("message", () => { clearInterval(timer); checkpoint(); db.close(); parentPort.close(); });
`;

export class Checkpointer {
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(writer: Database.Database, path: string, intervalMs = 100) {
    writer.pragma("wal_autocheckpoint = 0");
    const module = createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER, { eval: true, workerData: { module, path, intervalMs } });
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
