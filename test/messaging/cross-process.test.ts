/**
 * Wake-ups between processes: a wait in one instance ends when another commits what it waits
 * for, with the safety poll out of the picture; each wait begins at any moment around the commit
 * it waits for.
 */
import { describe, expect, it } from "vitest";
import { backends, range, sleep, useDuro, within } from "../helpers.js";

const NO_SAFETY_POLL = { safetyPollSeconds: 3600 };
const jitter = () => sleep(Math.random() * 4);

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  it("waits begun at any moment around the commits they wait for are all woken: results, events, streams, messages", async () => {
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
