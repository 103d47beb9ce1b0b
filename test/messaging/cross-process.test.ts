/**
 * Wake-ups between processes: a wait in one instance ends when another commits what it waits
 * for, with the safety poll out of the picture. On PostgreSQL, a commit that only waiters want is
 * announced only while some process waits (the gate of connection.ts), so these waits start and
 * end over and over, each at any moment around the commit it waits for.
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { hearing } from "../../src/engine/waiters.js";
import { WorkflowQueue } from "../../src/index.js";
import { backends, gate, POSTGRES_URL, range, rawQuery, sleep, useDuro, waitFor, within } from "../helpers.js";

const channelOf = (url: string) => `duro_${new URL(url).searchParams.get("schema")}`;
const NO_SAFETY_POLL = { safetyPollSeconds: 3600 };
const jitter = () => sleep(Math.random() * 4);

afterEach(() => {
  hearing.afterMs = 2000;
});

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("waits begun at any moment around the commits they wait for are all woken: results, events, streams, messages", async () => {
    hearing.afterMs = 0; // each wait's end stops the hearing, the next starts it again
    const x = t.duro({ executorId: "x", ...NO_SAFETY_POLL });
    const y = t.duro({ executorId: "y", ...NO_SAFETY_POLL });
    const talk = x.registerWorkflow("talk", async (i: number) => {
      await jitter();
      await x.setEvent("e", i);
      await x.writeStream("s", i);
      await x.closeStream("s");
      return `${i}:${await x.recv<string>("m", 60)}`;
    });
    const quick = x.registerWorkflow("quick", async (i: number) => {
      await jitter();
      return i * 2;
    });
    await Promise.all([x.launch(), y.launch()]);
    for (const i of range(60)) {
      const q = await x.startWorkflow(quick, i);
      await jitter();
      expect(await within(3000, (await y.retrieveWorkflow<number>(q.workflowId)).getResult(), `quick ${i}'s result in the other instance`)).toBe(i * 2);
      const h = await x.startWorkflow(talk, i);
      await jitter();
      expect(await within(3000, y.getEvent(h.workflowId, "e", 30), `talk ${i}'s event`)).toBe(i);
      const values: unknown[] = [];
      for await (const v of y.readStream(h.workflowId, "s")) values.push(v);
      expect(values).toEqual([i]);
      await jitter();
      await y.send(h.workflowId, "hi", "m");
      expect(await within(3000, (await y.retrieveWorkflow<string>(h.workflowId)).getResult(), `talk ${i}'s result`)).toBe(`${i}:hi`);
    }
  });
});

describe("postgres: the gate of waiters' wake-ups", () => {
  const t = useDuro("postgres");
  const listeners: pg.Client[] = [];
  afterEach(async () => {
    await Promise.all(listeners.splice(0).map((c) => c.end()));
  });

  /** Every NOTIFY payload sent on the database's channel, as a plain LISTEN connection hears them (it holds no gate). */
  async function overhear(url: string): Promise<string[]> {
    const heard: string[] = [];
    const client = new pg.Client({ connectionString: POSTGRES_URL });
    listeners.push(client);
    await client.connect();
    client.on("notification", (n) => heard.push(n.payload ?? ""));
    await client.query(`LISTEN "${channelOf(url)}"`);
    return heard;
  }

  /** Shared holds of the gate's advisory locks (two-key locks: classid is the channel's hash). */
  const gateHolds = async (url: string) =>
    Number((await rawQuery(url, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND mode = 'ShareLock' AND classid = hashtext($1)::oid", [channelOf(url)]))[0].n);

  it("a workflow awaited where it runs commits without NOTIFY; one awaited by another process is announced", async () => {
    const x = t.duro({ executorId: "x", ...NO_SAFETY_POLL });
    const release = gate();
    const double = x.registerWorkflow("double", async (n: number) => n * 2);
    const held = x.registerWorkflow("held", async () => {
      await release.promise;
      return "done";
    });
    new WorkflowQueue(x, "q");
    await x.launch();
    const heard = await overhear(t.url);
    const direct = await x.startWorkflow(double.with({ workflowId: "direct" }), 21);
    expect(await direct.getResult()).toBe(42);
    // A queued workflow's outcome is always sent (it frees a slot), and NOTIFYs arrive in commit
    // order: once it is heard, the direct workflow's start and outcome would have been heard before.
    const queued = await x.startWorkflow(double.with({ queueName: "q" }), 1);
    expect(await queued.getResult()).toBe(2);
    await waitFor(() => heard.some((p) => p.split("\n").includes(`status:${queued.workflowId}`)), 5000, "the queued outcome's NOTIFY");
    expect(heard.join("\n")).not.toMatch(/direct/);
    expect(await gateHolds(t.url)).toBe(0);

    const y = t.duro({ executorId: "y", ...NO_SAFETY_POLL });
    await y.launch();
    const h = await x.startWorkflow(held);
    const result = (await y.retrieveWorkflow<string>(h.workflowId)).getResult();
    // y holds the gate, on its LISTEN connection, before its first look.
    await waitFor(async () => (await gateHolds(t.url)) === 16, 5000, "y's hold on the gate");
    release.open();
    expect(await within(3000, result, "the result in the other instance")).toBe("done");
    await waitFor(() => heard.some((p) => p.split("\n").includes(`status:${h.workflowId}`)), 5000, "the outcome's NOTIFY");
  });
});
