/**
 * Wake-ups across processes sharing a SQLite file: each write transaction logs its wake keys, so
 * another process re-checks only the waits a commit concerns (see the wake log, migration 5).
 * Entries pruned before a process looked re-check every wait; a commit by a writer that does not
 * log (another tool, an older duro) is left to the safety poll.
 */
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { serialize } from "../../src/serialization.js";
import { useDuro, within } from "../helpers.js";

describe("sqlite: the wake log", () => {
  const t = useDuro("sqlite");

  /** A waiting getEvent of workflow "w"'s key "k", and a raw connection to the file, as another tool's. */
  async function waiting(safetyPollSeconds = 60) {
    const duro = t.duro({ safetyPollSeconds }); // 60: only the wake log can wake it in time
    const w = duro.registerWorkflow("w", async () => "done");
    await duro.launch();
    await w.with({ workflowId: "w" })();
    const event = duro.getEvent<number>("w", "k", 30);
    const raw = new Database(t.url.slice("sqlite:".length));
    const setEvent = (value: number) =>
      raw.prepare("INSERT INTO workflow_events (workflow_id, key, value, serialization) VALUES ('w', 'k', ?, 'default')").run(serialize(value, "default"));
    return { event, raw, setEvent };
  }

  it("a database in memory, which no other process can write, is not watched for their commits (no 5 ms poll)", async () => {
    const watching = (duro: { engine: unknown }) => ((duro.engine as { store: { wakes: { watching: boolean } } }).store.wakes.watching);
    const memory = t.duro({ databaseUrl: "sqlite::memory:" });
    const file = t.duro();
    for (const duro of [memory, file]) {
      const w = duro.registerWorkflow("w", async () => duro.recv("t", 0.05));
      await duro.launch();
      expect(await w()).toBeNull(); // a wait, which subscribes to wake-ups
    }
    expect([watching(memory), watching(file)]).toEqual([false, true]);
  });

  it("a commit by a writer that does not log is found by the safety poll", async () => {
    const { event, raw, setEvent } = await waiting(0.2);
    setEvent(1);
    expect(await within(5_000, event, "the event")).toBe(1);
    raw.close();
  });

  it("a process that looks after the entries it missed were pruned re-checks every wait", async () => {
    const { event, raw, setEvent } = await waiting();
    raw.transaction(() => {
      for (let i = 0; i < 5000; i++) raw.prepare("INSERT INTO wake_log (keys) VALUES ('')").run();
      raw.prepare("DELETE FROM wake_log WHERE seq <= (SELECT MAX(seq) FROM wake_log) - 4096").run();
      setEvent(2);
    })();
    expect(await within(5_000, event, "the event")).toBe(2);
    raw.close();
  });
});
