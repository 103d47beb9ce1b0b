/** Bad queue options and bad enqueue options fail with InvalidArgumentError, writing nothing. */
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, WorkflowQueue, type QueueOptions, type StartOptions } from "../../src/index.js";
import { backends, useClients, useDuro } from "../helpers.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);
  const client = useClients();

  describe("new WorkflowQueue", () => {
    const bad: [string, QueueOptions][] = [
      ["negative concurrency", { concurrency: -1 }],
      ["zero concurrency", { concurrency: 0 }],
      ["fractional concurrency", { concurrency: 1.5 }],
      ["NaN concurrency", { concurrency: Number.NaN }],
      ["string concurrency", { concurrency: "3" as unknown as number }],
      ["negative workerConcurrency", { workerConcurrency: -2 }],
      ["zero workerConcurrency", { workerConcurrency: 0 }],
      ["fractional workerConcurrency", { workerConcurrency: 2.5 }],
      ["workerConcurrency above concurrency", { concurrency: 2, workerConcurrency: 3 }],
      ["zero rate limit", { rateLimit: { limit: 0, periodSeconds: 1 } }],
      ["negative rate limit", { rateLimit: { limit: -1, periodSeconds: 1 } }],
      ["fractional rate limit", { rateLimit: { limit: 1.5, periodSeconds: 1 } }],
      ["rate limit without a limit", { rateLimit: { periodSeconds: 1 } as never }],
      ["zero period", { rateLimit: { limit: 1, periodSeconds: 0 } }],
      ["negative period", { rateLimit: { limit: 1, periodSeconds: -1 } }],
      ["infinite period", { rateLimit: { limit: 1, periodSeconds: Infinity } }],
      ["concurrency past 32 bits", { concurrency: 2 ** 31 }],
      ["MAX_SAFE_INTEGER concurrency", { concurrency: Number.MAX_SAFE_INTEGER }],
      ["workerConcurrency past 32 bits", { workerConcurrency: 2 ** 31 }],
      ["rate limit past 32 bits", { rateLimit: { limit: 2 ** 31, periodSeconds: 1 } }],
      ["partitionQueue not a boolean", { partitionQueue: "yes" as unknown as boolean }],
      ["priorityEnabled not a boolean", { priorityEnabled: 1 as unknown as boolean }],
      ["zero polling interval", { pollingIntervalSeconds: 0 }],
      ["negative polling interval", { pollingIntervalSeconds: -1 }],
    ];
    it.each(bad)("refuses %s", (_, options) => {
      const duro = t.duro();
      expect(() => new WorkflowQueue(duro, "q", options)).toThrow(InvalidArgumentError);
    });

    it("refuses an empty name and a name declared twice on one instance", () => {
      const duro = t.duro();
      expect(() => new WorkflowQueue(duro, "")).toThrow(InvalidArgumentError);
      new WorkflowQueue(duro, "q");
      expect(() => new WorkflowQueue(duro, "q")).toThrow(InvalidArgumentError);
    });

    it("accepts sensible options", () => {
      const duro = t.duro();
      new WorkflowQueue(duro, "a", { concurrency: 5, workerConcurrency: 5, rateLimit: { limit: 10, periodSeconds: 0.5 }, priorityEnabled: true, pollingIntervalSeconds: 0.1 });
      new WorkflowQueue(duro, "b", { partitionQueue: true, concurrency: 1 });
      new WorkflowQueue(duro, "c");
    });

    it("runs work under limits at their edges: the largest limits, periods of fractional or huge milliseconds", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("wf", async (x: string) => x);
      const queues = {
        largest: { concurrency: 2 ** 31 - 1, workerConcurrency: 2 ** 31 - 1, rateLimit: { limit: 2 ** 31 - 1, periodSeconds: 1 } },
        fractional: { rateLimit: { limit: 2, periodSeconds: 1.0005 } },
        tiny: { rateLimit: { limit: 1, periodSeconds: 0.0001 } },
        huge: { rateLimit: { limit: 1, periodSeconds: 1e300 } },
      };
      for (const [name, options] of Object.entries(queues)) new WorkflowQueue(duro, name, options);
      await duro.launch();
      const handles = await Promise.all(Object.keys(queues).map((queueName) => duro.startWorkflow(wf.with({ queueName }), queueName)));
      // Each queue's first workflow is within its limits; before, PostgreSQL refused every claim of these queues.
      expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual(Object.keys(queues));
    });
  });

  describe("enqueue", () => {
    async function setup() {
      const duro = t.duro({ executorId: "e1", appVersion: "v1" });
      const wf = duro.registerWorkflow("wf", async (x: number) => x);
      new WorkflowQueue(duro, "plain");
      new WorkflowQueue(duro, "prio", { priorityEnabled: true });
      new WorkflowQueue(duro, "parts", { partitionQueue: true });
      await duro.launch();
      return { duro, wf };
    }

    const bad: [string, StartOptions][] = [
      ["an unknown queue name", { queueName: "nope" }],
      ["an empty queue name", { queueName: "" }],
      ["priority 0", { queueName: "prio", priority: 0 }],
      ["priority 2^31", { queueName: "prio", priority: 2 ** 31 }],
      ["priority 1.5", { queueName: "prio", priority: 1.5 }],
      ["a negative priority", { queueName: "prio", priority: -3 }],
      ["no partitionKey on a partitioned queue", { queueName: "parts" }],
      ["an empty partitionKey", { queueName: "parts", partitionKey: "" }],
      ["a partitionKey on a queue that is not partitioned", { queueName: "plain", partitionKey: "a" }],
      ["a negative delay", { queueName: "plain", delaySeconds: -1 }],
      ["an infinite delay", { queueName: "plain", delaySeconds: Infinity }],
      ["an empty deduplicationId", { queueName: "plain", deduplicationId: "" }],
      ["priority without a queue", { priority: 1 }],
      ["deduplicationId without a queue", { deduplicationId: "d" }],
      ["partitionKey without a queue", { partitionKey: "a" }],
      ["delaySeconds without a queue", { delaySeconds: 1 }],
    ];
    it.each(bad)("refuses %s, writing nothing", async (_, options) => {
      const { duro, wf } = await setup();
      await expect(duro.startWorkflow(wf.with(options), 1)).rejects.toThrow(InvalidArgumentError);
      await expect(duro.enqueueMany(wf.with(options), [[1]])).rejects.toThrow(InvalidArgumentError);
      expect(await duro.listWorkflows()).toEqual([]);
    });

    it("accepts priorities 1 and 2^31-1 and a partition key where they belong", async () => {
      const { duro, wf } = await setup();
      const handles = await Promise.all([
        duro.startWorkflow(wf.with({ queueName: "prio", priority: 1 }), 1),
        duro.startWorkflow(wf.with({ queueName: "prio", priority: 2 ** 31 - 1 }), 2),
        duro.startWorkflow(wf.with({ queueName: "parts", partitionKey: "k" }), 3),
      ]);
      expect(await Promise.all(handles.map((h) => h.getResult()))).toEqual([1, 2, 3]);
    });

    it("refuses bad options from a DuroClient too", async () => {
      await setup();
      const c = client(t.url);
      await expect(c.enqueue({ workflowName: "", queueName: "plain" })).rejects.toThrow(InvalidArgumentError);
      await expect(c.enqueue({ workflowName: "wf", queueName: "" })).rejects.toThrow(InvalidArgumentError);
      await expect(c.enqueue({ workflowName: "wf" } as never)).rejects.toThrow(InvalidArgumentError);
      for (const priority of [0, 2 ** 31, 1.5]) {
        await expect(c.enqueue({ workflowName: "wf", queueName: "prio", priority }, 1)).rejects.toThrow(InvalidArgumentError);
      }
      await expect(c.enqueue({ workflowName: "wf", queueName: "plain", delaySeconds: -1 }, 1)).rejects.toThrow(InvalidArgumentError);
      await expect(c.enqueueMany({ workflowName: "wf", queueName: "plain" }, [[1], 2] as never)).rejects.toThrow(InvalidArgumentError);
      expect(await c.listWorkflows()).toEqual([]);
    });
  });
});
