/**
 * On a server with autovacuum off, an executor analyzes and vacuums duro's own tables at
 * autovacuum's thresholds (see src/storage/postgres/maintenance.ts); with autovacuum on it
 * leaves them to the server.
 */
import { describe, expect, it } from "vitest";
import { range, rawQuery, useDuro, waitFor } from "../helpers.js";

describe("postgres: table housekeeping", () => {
  const t = useDuro("postgres");

  it("an executor analyzes and vacuums its tables once enough rows changed, when the server's autovacuum does not", async () => {
    const duro = t.duro({ safetyPollSeconds: 0.05 }); // housekeeping every sixth poll
    const wf = duro.registerWorkflow("wf", async (x: number) => x);
    await duro.launch();
    for (const i of range(300)) await wf(i); // 300 rows inserted, each updated once (a dead row each)
    const [{ autovacuum }] = await rawQuery(t.url, "SHOW autovacuum");
    const stats = async () =>
      (await rawQuery(t.url, "SELECT last_analyze, last_vacuum FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'workflow_status'"))[0];
    if (autovacuum === "on") {
      expect(await duro.engine.store.maintain!()).toEqual([]);
      expect(await stats()).toEqual({ last_analyze: null, last_vacuum: null });
      return;
    }
    // Backends report their counts to the statistics within about 10 s of going idle.
    await waitFor(async () => (await stats()).last_vacuum !== null, 30_000, "workflow_status to be vacuumed");
    expect((await stats()).last_analyze).not.toBeNull();
    // Nothing left to do until enough changes again (once the last of the counts have come in:
    // a backend's counts may arrive after a vacuum that saw only some of them).
    const vacuums = async () => (await duro.engine.store.maintain!()).includes("VACUUM (ANALYZE) workflow_status");
    await waitFor(async () => !(await vacuums()), 30_000, "housekeeping to have nothing left to do");
    expect(await vacuums()).toBe(false);
  });
});
