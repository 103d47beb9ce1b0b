/**
 * A process that stalls inside a transaction (frozen, or its event loop blocked) longer than its
 * lease finds, when it goes on, that the server ended the session for idling in a transaction
 * (SQLSTATE 25P03). That is a lost connection like any other: the transaction never committed,
 * and it runs again on a new one.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { useDuro } from "../helpers.js";

const query = pg.Client.prototype.query;
afterEach(() => {
  pg.Client.prototype.query = query;
});

/** Blocks the event loop, as a frozen or busy process does: nothing is read from any socket meanwhile. */
const stall = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

describe("postgres", () => {
  const t = useDuro("postgres");

  it("a launch whose migration transaction outlived the idle-in-transaction timeout runs it again, and launches", async () => {
    let stalled = 0;
    // Once, right after the migration takes its lock: the session then idles in its transaction
    // past the server's timeout (the lease, 0.3 s), and the next statement meets the server's FATAL.
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const result = (query as (...a: unknown[]) => unknown).apply(this, args);
      const text = typeof args[0] === "string" ? args[0] : "";
      if (!stalled && text.includes("pg_advisory_xact_lock") && result instanceof Promise) {
        stalled++;
        return result.then((value) => (stall(1000), value));
      }
      return result;
    } as typeof query;
    const duro = t.duro({ executorLeaseSeconds: 0.3 });
    const double = duro.registerWorkflow("double", async (x: number) => x * 2);
    await duro.launch();
    expect(stalled).toBe(1);
    expect(await double(21)).toBe(42);
  });
});
