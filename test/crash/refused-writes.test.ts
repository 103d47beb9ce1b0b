/**
 * A database that answers reads but refuses writes (a full disk): each resume of an interrupted
 * workflow loads it, runs its next step body, and fails to record it. The tries must back off
 * across those relapses, as they do while the database cannot be reached at all, and the outage
 * be told once: before, each relapse started again at 100 ms, and a step body ran ~8 times a
 * second for as long as the disk stayed full.
 */
import { describe, expect, it } from "vitest";
import { DatabaseError } from "../../src/index.js";
import { backends, quietLogger, sleep, useDuro, waitFor } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("a step whose record keeps being refused runs again with growing pauses, and the outage is told once", async () => {
    const warnings: string[] = [];
    const duro = t.duro({ logger: { ...quietLogger, warn: (message: string) => void warnings.push(message) } });
    let bodies = 0;
    const charge = duro.registerStep("charge", async () => ++bodies);
    const wf = duro.registerWorkflow("pay", async () => charge());
    await duro.launch();
    const store = duro.engine.store;
    const write = store.write.bind(store);
    let full = true;
    store.write = async (batch, options) => {
      if (full && batch.some((w) => w.kind === "recordOperation")) throw new DatabaseError("The disk is full (simulated).");
      return write(batch, options);
    };
    const handle = await duro.startWorkflow(wf);
    await waitFor(() => bodies >= 1, 5000, "the first run of the step");
    await sleep(3000);
    // 100, 200, 400, 800 and 1,600 ms between tries: about five in three seconds, not 25.
    expect(bodies).toBeLessThanOrEqual(8);
    expect(warnings.filter((w) => w.includes("was interrupted"))).toHaveLength(1);
    full = false;
    expect(await handle.getResult()).toBe(bodies);
  });
});
