/** Streams: writeStream / closeStream / readStream — in order, exactly once, ends, offsets, timeouts. */
import { describe, expect, it } from "vitest";
import { NonDeterminismError, NotInWorkflowError, StreamTimeoutError, WorkflowNotFoundError, type Duro } from "../../src/index.js";
import { backends, crash, gate, rejectionOf, since, useDuro, waitFor } from "../helpers.js";

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const values: T[] = [];
  for await (const value of stream) values.push(value);
  return values;
}

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("writing and reading", () => {
    it("a reader gets every value written, in order, and ends at closeStream", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("writer", async () => {
        for (const v of [1, "two", { three: 3 }]) await duro.writeStream("out", v);
        await duro.closeStream("out");
        await duro.recv("finish", 10); // still running after the close
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      expect(await collect(duro.readStream(handle.workflowId, "out"))).toEqual([1, "two", { three: 3 }]);
      expect((await handle.getStatus())!.status).toBe("PENDING");
      await duro.send(handle.workflowId, null, "finish");
      await handle.getResult();
    });

    it("a reader that starts first receives values as they are written", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("ticker", async () => {
        for (let i = 0; i < 3; i++) {
          await duro.recv("tick", 10);
          await duro.writeStream("ticks", i);
        }
        await duro.closeStream("ticks");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const received: number[] = [];
      const reading = (async () => {
        for await (const value of duro.readStream<number>(handle.workflowId, "ticks")) {
          received.push(value);
          if (value < 2) await duro.send(handle.workflowId, null, "tick"); // ask for the next one only now
        }
      })();
      await duro.send(handle.workflowId, null, "tick");
      await reading;
      expect(received).toEqual([0, 1, 2]);
    });

    it("a stream ends when its workflow ends, even without closeStream", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("unclosed", async () => {
        await duro.writeStream("s", "a");
        await duro.writeStream("s", "b");
        await duro.recv("finish", 10);
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const reading = collect(duro.readStream(handle.workflowId, "s"));
      await duro.send(handle.workflowId, null, "finish");
      expect(await reading).toEqual(["a", "b"]);
    });

    it("a stream also ends when its workflow fails", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("failing", async () => {
        await duro.writeStream("s", 1);
        throw new Error("writer died");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult().catch(() => undefined);
      expect(await collect(duro.readStream(handle.workflowId, "s"))).toEqual([1]);
    });

    it("reading from an offset skips the values before it", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("numbers", async () => {
        for (let i = 0; i < 5; i++) await duro.writeStream("n", i * 10);
        await duro.closeStream("n");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      expect(await collect(duro.readStream(handle.workflowId, "n", { offset: 2 }))).toEqual([20, 30, 40]);
      expect(await collect(duro.readStream(handle.workflowId, "n", { offset: 5 }))).toEqual([]);
      expect(await collect(duro.readStream(handle.workflowId, "n"))).toEqual([0, 10, 20, 30, 40]); // reading consumes nothing
    });

    it("values written after closeStream reach no reader, from whatever offset it starts", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("late", async () => {
        await duro.writeStream("s", "a");
        await duro.closeStream("s");
        await duro.writeStream("s", "after1");
        await duro.writeStream("s", "after2");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      for (const offset of [0, 1, 2, 3, 4]) {
        expect(await collect(duro.readStream(handle.workflowId, "s", { offset })), `offset ${offset}`).toEqual(offset === 0 ? ["a"] : []);
      }
      // Inside a workflow too (where the end is a recorded operation).
      const reader = duro.registerWorkflow("reader", async (id: string) => collect(duro.readStream(id, "s", { offset: 2 })));
      expect(await reader(handle.workflowId)).toEqual([]);
    });

    it("a reader waiting on one key is looked at again for writes to that key (or the workflow's end) only", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("two streams", async () => {
        await duro.recv("go", 10);
        for (let i = 0; i < 20; i++) await duro.writeStream("noise", i);
        await duro.writeStream("wanted", "here");
        await duro.closeStream("wanted");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const store = duro.engine.store;
      const readStream = store.readStream.bind(store);
      let looks = 0;
      store.readStream = (id, key, offset) => (key === "wanted" && looks++, readStream(id, key, offset));
      const readers = Array.from({ length: 10 }, () => collect(duro.readStream(handle.workflowId, "wanted")));
      await waitFor(() => looks === 10, 5000, "every reader's first look");
      await duro.send(handle.workflowId, null, "go");
      expect(await Promise.all(readers)).toEqual(Array(10).fill(["here"]));
      // A look when the value came, one when the stream closed, the end's: not one per "noise" write.
      expect(looks).toBeLessThanOrEqual(50);
    });

    it("streams of different keys are independent", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("twoKeys", async () => {
        await duro.writeStream("a", "a1");
        await duro.writeStream("b", "b1");
        await duro.closeStream("a");
        await duro.writeStream("b", "b2");
        await duro.closeStream("b");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      expect(await collect(duro.readStream(handle.workflowId, "a"))).toEqual(["a1"]);
      expect(await collect(duro.readStream(handle.workflowId, "b"))).toEqual(["b1", "b2"]);
      expect(await collect(duro.readStream(handle.workflowId, "never-written"))).toEqual([]);
    });

    it("a step can write to its workflow's stream", async () => {
      const duro = t.duro();
      const step = duro.registerStep("produce", async () => {
        await duro.writeStream("s", "from step 1");
        await duro.writeStream("s", "from step 2");
      });
      const wf = duro.registerWorkflow("stepWriter", async () => {
        await duro.writeStream("s", "from workflow");
        await step();
        await duro.closeStream("s");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      expect(await collect(duro.readStream(handle.workflowId, "s"))).toEqual(["from workflow", "from step 1", "from step 2"]);
    });
  });

  describe("errors", () => {
    it("no value within timeoutSeconds throws StreamTimeoutError", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("quiet", async () => {
        await duro.writeStream("s", "only");
        await duro.recv("finish", 10);
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const received: unknown[] = [];
      const start = performance.now();
      const error = await rejectionOf(
        (async () => {
          for await (const value of duro.readStream(handle.workflowId, "s", { timeoutSeconds: 0.3 })) received.push(value);
        })(),
      );
      expect(received).toEqual(["only"]);
      expect(error).toBeInstanceOf(StreamTimeoutError);
      expect(since(start)).toBeGreaterThanOrEqual(280);
      await duro.send(handle.workflowId, null, "finish");
    });

    it("timeoutSeconds: Infinity waits without end, as recv's and getEvent's Infinity does", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("later", async () => {
        await duro.recv("go", 10);
        await duro.writeStream("s", "late");
        await duro.closeStream("s");
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const reading = collect(duro.readStream(handle.workflowId, "s", { timeoutSeconds: Infinity }));
      await duro.send(handle.workflowId, null, "go");
      expect(await reading).toEqual(["late"]);
    });

    it("a read timeout inside a workflow reaches the workflow as StreamTimeoutError", async () => {
      const duro = t.duro();
      const silent = duro.registerWorkflow("silent", async () => {
        await duro.recv("finish", 10);
      });
      const reader = duro.registerWorkflow("reader", async (source: string) => {
        try {
          for await (const _ of duro.readStream(source, "s", { timeoutSeconds: 0.2 })) return "got a value";
          return "ended";
        } catch (error) {
          return error instanceof StreamTimeoutError ? "timed out" : `other: ${error}`;
        }
      });
      await duro.launch();
      const source = await duro.startWorkflow(silent);
      expect(await (await duro.startWorkflow(reader, source.workflowId)).getResult()).toBe("timed out");
      await duro.send(source.workflowId, null, "finish");
    });

    it("two stream reads in flight at once in one workflow throw NonDeterminismError; one after the other is fine", async () => {
      const duro = t.duro();
      const writer = duro.registerWorkflow("writer", async () => {
        for (const key of ["a", "b"]) {
          await duro.writeStream(key, key);
          await duro.closeStream(key);
        }
      });
      const together = duro.registerWorkflow("together", async (source: string) => {
        await Promise.all([collect(duro.readStream(source, "a")), collect(duro.readStream(source, "b"))]);
      });
      const inTurn = duro.registerWorkflow("inTurn", async (source: string) => [
        ...(await collect(duro.readStream(source, "a"))),
        ...(await collect(duro.readStream(source, "b"))),
      ]);
      await duro.launch();
      const source = await duro.startWorkflow(writer);
      await source.getResult();
      const error = await rejectionOf((await duro.startWorkflow(together, source.workflowId)).getResult());
      expect(error).toBeInstanceOf(NonDeterminismError);
      expect((error as Error).message).toMatch(/one stream at a time/);
      expect(await (await duro.startWorkflow(inTurn, source.workflowId)).getResult()).toEqual(["a", "b"]);
    });

    it("writeStream and closeStream outside a workflow throw NotInWorkflowError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(duro.writeStream("s", 1)).rejects.toBeInstanceOf(NotInWorkflowError);
      await expect(duro.closeStream("s")).rejects.toBeInstanceOf(NotInWorkflowError);
    });

    it("reading the stream of an unknown workflow throws WorkflowNotFoundError", async () => {
      const duro = t.duro();
      await duro.launch();
      await expect(collect(duro.readStream("no-such-workflow", "s", { timeoutSeconds: 1 }))).rejects.toBeInstanceOf(WorkflowNotFoundError);
    });
  });

  describe("durability", () => {
    it("a recovered writer does not write its recorded values again", async () => {
      const state = { hang: true, entered: 0 };
      const never = gate();
      const build = (duro: Duro) => {
        const stop = duro.registerStep("hang", async () => {
          state.entered++;
          if (state.hang) await never.promise;
        });
        return duro.registerWorkflow("writer", async () => {
          await duro.writeStream("s", "first");
          await stop();
          await duro.writeStream("s", "second");
          await duro.closeStream("s");
        });
      };
      const a = t.duro({ executorId: "e1" });
      const wf = build(a);
      await a.launch();
      await a.startWorkflow(wf.with({ workflowId: "W" }));
      await waitFor(() => state.entered === 1);
      await crash(a);
      state.hang = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      await b.getResult("W");
      expect(await collect(b.readStream("W", "s"))).toEqual(["first", "second"]);
    });

    it("reading inside a workflow is recorded, and a recovered reader yields the same values", async () => {
      const state = { hang: true, entered: 0 };
      const never = gate();
      const build = (duro: Duro) => {
        const stop = duro.registerStep("hang", async () => {
          state.entered++;
          if (state.hang) await never.promise;
        });
        const writer = duro.registerWorkflow("writer", async () => {
          await duro.writeStream("s", "x");
          await duro.writeStream("s", "y");
          await duro.closeStream("s");
        });
        const reader = duro.registerWorkflow("reader", async (source: string) => {
          const values: unknown[] = [];
          for await (const value of duro.readStream(source, "s")) values.push(value);
          await stop();
          return values;
        });
        return { writer, reader };
      };
      const a = t.duro({ executorId: "e1" });
      const { writer, reader } = build(a);
      await a.launch();
      const w = await a.startWorkflow(writer.with({ workflowId: "SRC" }));
      await w.getResult();
      await a.startWorkflow(reader.with({ workflowId: "RDR" }), "SRC");
      await waitFor(() => state.entered === 1);
      const recorded = await a.listWorkflowSteps("RDR");
      // Each value read is a recorded operation (before the "hang" step).
      expect(recorded.length).toBeGreaterThanOrEqual(3);
      expect(JSON.stringify(recorded.map((s) => s.output))).toMatch(/"x".*"y"/);
      await crash(a);
      state.hang = false;
      const b = t.duro({ executorId: "e1" });
      build(b);
      await b.launch();
      expect(await b.getResult("RDR")).toEqual(["x", "y"]);
    });
  });
});
