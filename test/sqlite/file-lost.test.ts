/**
 * A SQLite file deleted or replaced under a running process (a cleanup script, a mistaken `rm`,
 * a restore that moved another file into place): SQLite would go on writing to the unlinked
 * file, every call succeeding, and a restart would find an empty database. duro refuses to go on
 * instead, with a DatabaseError that says why.
 */
import { existsSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DatabaseError, DuroClient } from "../../src/index.js";
import { quietLogger, useDuro, waitFor } from "../helpers.js";

describe("sqlite: the file deleted or replaced while open", () => {
  const t = useDuro("sqlite");

  it.each(["deleted", "replaced"] as const)("%s: starts fail with DatabaseError saying so, and shutdown returns", async (how) => {
    const duro = t.duro({ logger: quietLogger });
    const wf = duro.registerWorkflow("wf", async (n: number) => n);
    await duro.launch();
    expect(await (await duro.startWorkflow(wf, 1)).getResult()).toBe(1);
    const path = t.url.slice("sqlite:".length);
    if (how === "deleted") {
      for (const suffix of ["", "-wal", "-shm"]) rmSync(`${path}${suffix}`, { force: true });
    } else {
      const other = t.duro({ databaseUrl: `sqlite:${path}.other`, logger: quietLogger });
      await other.launch();
      await other.shutdown();
      renameSync(`${path}.other`, path);
    }
    let error: unknown;
    await waitFor(async () => (error = await duro.startWorkflow(wf, 2).then(() => undefined, (e: unknown) => e)) !== undefined, 5000, "a start to fail");
    expect(error).toBeInstanceOf(DatabaseError);
    expect((error as Error).message).toMatch(/was deleted or replaced while this process had it open/);
    await duro.shutdown();
  });
});

describe("sqlite: a DuroClient told createSchema: false", () => {
  it("leaves a path with no file as it is: no file, no folders, and a DatabaseError that says so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "duro-noschema-"));
    try {
      const path = join(dir, "sub", "dir", "duro.sqlite");
      const reader = new DuroClient({ databaseUrl: `sqlite:${path}`, createSchema: false, logger: quietLogger });
      const error = await reader.listWorkflows().then(() => undefined, (e: unknown) => e);
      await reader.close();
      expect(error).toBeInstanceOf(DatabaseError);
      expect((error as Error).message).toContain(`There is no SQLite database at "${path}"`);
      expect(existsSync(join(dir, "sub"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
