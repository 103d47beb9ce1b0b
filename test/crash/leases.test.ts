/**
 * Executor leases. An executor adopts the PENDING work of another only when that one's lease ran
 * out while its own beats were landing on time: an outage or a freeze holds up every executor's
 * beats, and the others' may come back later than its own.
 */
import { describe, expect, it } from "vitest";
import type { Duro } from "../../src/index.js";
import { backends, gate, quietLogger, useDuro, waitFor } from "../helpers.js";

const LEASE_MS = 1500;

/** Holds `duro`'s heartbeats while `hold()` is in force, as an outage would; `release()` lets them land. */
function holdHeartbeats(duro: Duro) {
  const store = duro.engine.store;
  const heartbeat = store.heartbeat.bind(store);
  let held: ReturnType<typeof gate> | undefined;
  store.heartbeat = async (...args) => {
    if (held) await held.promise;
    return heartbeat(...args);
  };
  return {
    hold: () => void (held = gate()),
    release: () => {
      held?.open();
      held = undefined;
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("after an outage shorter than the lease, an executor whose beats come back first takes over nothing", async () => {
    const warnings: string[] = [];
    const logger = { ...quietLogger, warn: (message: string) => void warnings.push(message) };
    const make = (executorId: string) => {
      const duro = t.duro({ executorId, appVersion: "lease-v1", executorLeaseSeconds: LEASE_MS / 1000, logger });
      const wait = duro.registerWorkflow("wait", async () => `${executorId}:${await duro.recv<string>("go", 60)}`);
      return { duro, wait };
    };
    const x = make("exec-x");
    const y = make("exec-y");
    const launched = Date.now();
    await Promise.all([x.duro.launch(), y.duro.launch()]);
    const handles = [
      ...(await Promise.all([0, 1, 2].map((i) => x.duro.startWorkflow(x.wait.with({ workflowId: `x${i}` }))))),
      ...(await Promise.all([0, 1, 2].map((i) => y.duro.startWorkflow(y.wait.with({ workflowId: `y${i}` }))))),
    ];
    // Past their first lease (an executor takes over nobody during it), each judges the other's beats.
    await waitFor(() => Date.now() - launched > 1.2 * LEASE_MS, 5000, "the first lease to pass");

    // Neither can beat for most of a lease; then X's beats land again, and Y's half a lease later
    // (its connections came back more slowly). Y's last beat is then older than the lease.
    const [hx, hy] = [holdHeartbeats(x.duro), holdHeartbeats(y.duro)];
    hx.hold();
    hy.hold();
    await pause(0.8 * LEASE_MS);
    hx.release();
    await pause(0.5 * LEASE_MS);
    hy.release();
    await pause(2 * LEASE_MS);

    const rows = await x.duro.listWorkflows({ workflowIds: handles.map((h) => h.workflowId) });
    expect(rows.map((r) => `${r.workflowId}:${r.status}@${r.executorId}`).sort()).toEqual(
      ["x0", "x1", "x2"].map((id) => `${id}:PENDING@exec-x`).concat(["y0", "y1", "y2"].map((id) => `${id}:PENDING@exec-y`)),
    );
    expect(warnings.filter((w) => w.startsWith("Took over"))).toEqual([]);
    for (const h of handles) await x.duro.send(h.workflowId, "go", "go");
    expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(["exec-x:go", "exec-x:go", "exec-x:go", "exec-y:go", "exec-y:go", "exec-y:go"]);
  });
});
