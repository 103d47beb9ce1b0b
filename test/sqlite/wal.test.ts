/**
 * The SQLite write-ahead log on disk: a reader that holds a snapshot (a dashboard, another
 * process's long read) holds back checkpoints, so the log grows; once it is let go, the log
 * shrinks back to WAL_SIZE_LIMIT rather than keeping its peak size for the life of the process.
 * And commits that follow each other without a pause, which a passive checkpoint never catches
 * up with, do not grow it without bound either.
 */
import Database from "better-sqlite3";
import { statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WAL_SIZE_LIMIT } from "../../src/storage/sqlite/checkpointer.js";
import { useDuro, waitFor } from "../helpers.js";

describe("sqlite: the write-ahead log", () => {
  const t = useDuro("sqlite");

  it("grown past its limit while a reader held a snapshot, it shrinks back once the reader is done", async () => {
    const duro = t.duro();
    const big = duro.registerWorkflow("big", async (n: number) => `${n}`.padEnd(1024 * 1024, "x"));
    const small = duro.registerWorkflow("small", async () => 1);
    await duro.launch();
    const path = t.url.slice("sqlite:".length);
    const walSize = () => statSync(`${path}-wal`).size;

    const reader = new Database(path, { readonly: true });
    reader.exec("BEGIN");
    reader.prepare("SELECT count(*) FROM workflow_status").get(); // the snapshot is taken here
    const bytes = WAL_SIZE_LIMIT * 1.5;
    for (let n = 0; n * 1024 * 1024 < bytes; n += 8) await Promise.all(Array.from({ length: 8 }, (_, i) => big(n + i)));
    expect(walSize()).toBeGreaterThan(bytes);

    reader.exec("COMMIT");
    reader.close();
    // Once a checkpoint has copied the whole log back, a commit that finds no reader on the log
    // starts it over and trims the file (a checkpoint under way beside it can make it the next one).
    await waitFor(async () => (await small(), walSize() <= WAL_SIZE_LIMIT), 10_000, "the log trimmed");
  });

  it("stays bounded under commits that never pause for a passive checkpoint to catch up", async () => {
    const duro = t.duro();
    const big = duro.registerWorkflow("big", async (n: number) => `${n}`.padEnd(1024 * 1024, "x"));
    await duro.launch();
    const walSize = () => statSync(`${t.url.slice("sqlite:".length)}-wal`).size;
    let largest = 0;
    for (let n = 0; n * 1024 * 1024 < WAL_SIZE_LIMIT * 4; n++) {
      await big(n);
      largest = Math.max(largest, walSize());
    }
    expect(largest).toBeLessThan(WAL_SIZE_LIMIT * 2);
  });
});
