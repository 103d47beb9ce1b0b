/**
 * Messaging under real crashes (issue 4): a duro application in a child process (worker.mjs, on
 * the built package) receives, writes a stream or sends, gets SIGKILLed at a chosen point, and a
 * new process with the same executorId recovers the work at launch(). The test process is the
 * other side: it sends the messages, reads the stream, or receives what was sent — so every
 * wake-up here crosses processes. What was consumed and recorded is read back from the database.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Duro, DuroClient } from "../../src/index.js";
import { backends, freshDatabaseUrl, rawQuery, waitFor } from "../helpers.js";
import { MessagingChild } from "./child.js";

const EXECUTOR = "messaging-worker-1";
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

const opened: { shutdown(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.shutdown()));
});

/** A launched Duro in this (the test) process: another executor on the child's database. */
async function openDuro(url: string, setup?: (duro: Duro) => void): Promise<Duro> {
  const duro = new Duro({ databaseUrl: url, executorId: "messaging-test-process", appVersion: "messaging-crash-v1", logger: quiet });
  setup?.(duro);
  opened.push(duro);
  await duro.launch();
  return duro;
}

function openClient(url: string): DuroClient {
  const client = new DuroClient({ databaseUrl: url, logger: quiet });
  opened.push({ shutdown: () => client.close() });
  return client;
}

/** Every message ever delivered to `destinationId`, in delivery order, and whether it was consumed. */
async function messagesOf(url: string, destinationId: string): Promise<{ m: unknown; consumed: boolean }[]> {
  const rows = await rawQuery(url, "SELECT message, consumed FROM notifications WHERE destination_id = $1 ORDER BY seq", [destinationId]);
  return rows.map((r) => ({ m: JSON.parse(r.message), consumed: Boolean(r.consumed) }));
}

/** The outputs of workflow `id`'s recorded operations named `name`, in function-ID order. */
async function recordedOutputs(duro: Duro, id: string, name: string): Promise<unknown[]> {
  return (await duro.listWorkflowSteps(id)).filter((s) => s.functionName === name).map((s) => s.output);
}

const randomInt = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i); // [0, …, n-1]

/** A workflow for the test process that receives on "t" until "end" (or a 30 s silence) and returns all it got. */
function registerCollector(duro: Duro) {
  return duro.registerWorkflow("collector", async () => {
    const got: unknown[] = [];
    for (;;) {
      const m = await duro.recv("t", 30);
      got.push(m ?? "<timeout>");
      if (m === "end" || m === null) return got;
    }
  });
}

describe.each(backends)("%s", (backend) => {
  describe("receiver SIGKILLed between recv and its next step", () => {
    it("recovery replays the recorded message, consumes no other, and the rest stay queued for the later recvs (FIFO)", async () => {
      const url = freshDatabaseUrl(backend);
      const parent = await openDuro(url);
      const first = new MessagingChild(url, EXECUTOR, { mode: "receiver", id: "rx", count: 3, blockAt: 0 });
      await first.waitForEvent((e) => e.ev === "started", "the receiver started");
      for (const m of ["m0", "m1", "m2"]) await parent.send("rx", m, "t");

      // recv returned m0; the step after it began (and hangs): kill there.
      expect((await first.waitForEvent((e) => e.ev === "entered", "step 0 entered")).m).toBe("m0");
      expect(await first.kill()).toBe(true);

      // The crash left: m0 consumed and recorded as the first recv; m1 and m2 untouched; the step unrecorded.
      expect(await messagesOf(url, "rx")).toEqual([
        { m: "m0", consumed: true },
        { m: "m1", consumed: false },
        { m: "m2", consumed: false },
      ]);
      expect(await recordedOutputs(parent, "rx", "duro.recv")).toEqual(["m0"]);
      expect(await recordedOutputs(parent, "rx", "handle")).toEqual([]);

      const second = new MessagingChild(url, EXECUTOR, { mode: "receiver", id: "rx", count: 3 });
      expect(await second.finish()).toEqual(["m0:handled", "m1:handled", "m2:handled"]);
      // The first recv replayed m0 (it did not take m1); the unrecorded step ran again; the next recvs took m1, m2.
      expect(second.named("received").map((e) => [e.i, e.m])).toEqual([[0, "m0"], [1, "m1"], [2, "m2"]]);
      expect(second.named("entered").map((e) => [e.i, e.m])).toEqual([[0, "m0"], [1, "m1"], [2, "m2"]]);

      // Each message consumed exactly once, each recorded once, in order.
      expect(await messagesOf(url, "rx")).toEqual(["m0", "m1", "m2"].map((m) => ({ m, consumed: true })));
      expect(await recordedOutputs(parent, "rx", "duro.recv")).toEqual(["m0", "m1", "m2"]);
      expect(await recordedOutputs(parent, "rx", "handle")).toEqual(["m0:handled", "m1:handled", "m2:handled"]);
      expect((await parent.getWorkflowStatus("rx"))?.status).toBe("SUCCESS");
    });

    it("a recv woken by a message from another process, killed after it returned: recovery replays both recorded recvs and takes the message sent while it was down", async () => {
      const url = freshDatabaseUrl(backend);
      const parent = await openDuro(url);
      const first = new MessagingChild(url, EXECUTOR, { mode: "receiver", id: "rx", count: 3, blockAt: 1 });
      await first.waitForEvent((e) => e.ev === "started", "the receiver started");
      await parent.send("rx", "m0", "t");
      await first.waitForEvent((e) => e.ev === "entered" && e.i === 0, "step 0 entered");
      // The second recv records its wake-up time only once it has found no message: then it waits.
      await waitFor(async () => (await parent.listWorkflowSteps("rx")).some((s) => s.functionName === "duro.sleep"), 10_000, "the second recv to wait");
      await parent.send("rx", "m1", "t");
      expect((await first.waitForEvent((e) => e.ev === "entered" && e.i === 1, "step 1 entered")).m).toBe("m1");
      expect(await first.kill()).toBe(true);

      await parent.send("rx", "m2", "t"); // while nobody runs the receiver
      expect(await messagesOf(url, "rx")).toEqual([
        { m: "m0", consumed: true },
        { m: "m1", consumed: true },
        { m: "m2", consumed: false },
      ]);

      const second = new MessagingChild(url, EXECUTOR, { mode: "receiver", id: "rx", count: 3 });
      expect(await second.finish()).toEqual(["m0:handled", "m1:handled", "m2:handled"]);
      expect(second.named("received").map((e) => e.m)).toEqual(["m0", "m1", "m2"]);
      // Step 0 was recorded before the kill: only steps 1 (interrupted) and 2 ran in the new process.
      expect(second.named("entered").map((e) => [e.i, e.m])).toEqual([[1, "m1"], [2, "m2"]]);
      expect(await messagesOf(url, "rx")).toEqual(["m0", "m1", "m2"].map((m) => ({ m, consumed: true })));
      expect(await recordedOutputs(parent, "rx", "duro.recv")).toEqual(["m0", "m1", "m2"]);
    });

    it("killed at an arbitrary point while receiving a run of messages: each received exactly once, in order", async () => {
      const url = freshDatabaseUrl(backend);
      const parent = await openDuro(url);
      const N = 80;
      const messages = upTo(N).map((i) => `m${i}`);
      const first = new MessagingChild(url, EXECUTOR, { mode: "receiver", id: "rx", count: N });
      await first.waitForEvent((e) => e.ev === "started", "the receiver started");
      // Paced, so the receiver is killed mid-run (on SQLite a loop of sends would not let this
      // process read the child's output until it ended).
      const sending = (async () => {
        for (const m of messages) {
          await parent.send("rx", m, "t");
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      await first.waitForCount("received", randomInt(10, 40));
      expect(await first.kill()).toBe(true);
      await sending;
      const before = first.named("received").map((e) => e.m);
      expect(before, "the killed process received a prefix, in order").toEqual(messages.slice(0, before.length));
      expect(before.length).toBeLessThan(N);

      const second = new MessagingChild(url, EXECUTOR, { mode: "receiver", id: "rx", count: N });
      expect(await second.finish()).toEqual(messages.map((m) => `${m}:handled`));
      expect(second.named("received").map((e) => e.m)).toEqual(messages);
      expect(await messagesOf(url, "rx")).toEqual(messages.map((m) => ({ m, consumed: true })));
      expect(await recordedOutputs(parent, "rx", "duro.recv")).toEqual(messages);
    });
  });

  describe("stream writer SIGKILLed mid-stream", () => {
    it("killed after value k: a reader in another process yields every value once, in order, across the kill, and ends at close", async () => {
      const url = freshDatabaseUrl(backend);
      const reader = await openDuro(url);
      const N = 10;
      const K = 4;
      const first = new MessagingChild(url, EXECUTOR, { mode: "writer", id: "w", n: N, blockAt: K });
      await first.waitForEvent((e) => e.ev === "started", "the writer started");
      const seen: unknown[] = [];
      let ended = false;
      const reading = (async () => {
        for await (const v of reader.readStream("w", "s", { timeoutSeconds: 30 })) seen.push(v);
        ended = true;
      })();
      await first.waitForEvent((e) => e.ev === "wrote" && e.i === K, `value ${K} written`);
      await waitFor(() => seen.length === K + 1, 10_000, `the reader to see values 0…${K}`);
      expect(await first.kill()).toBe(true);
      expect(seen).toEqual(upTo(K + 1));
      expect(ended, "the reader waits through the crash").toBe(false);

      const second = new MessagingChild(url, EXECUTOR, { mode: "writer", id: "w", n: N });
      expect(await second.finish()).toBe(N);
      await reading;
      expect(seen).toEqual(upTo(N));
      // Values 0…K-1 were recorded with their steps; the recovered writer ran only step K (interrupted) onwards.
      expect(first.named("wrote").map((e) => e.i)).toEqual(upTo(K + 1));
      expect(second.named("wrote").map((e) => e.i)).toEqual(upTo(N).slice(K));
      expect(second.named("closed")).toHaveLength(1);
      // What is stored holds each value once: a fresh read, and one from an offset, agree.
      const again: unknown[] = [];
      for await (const v of reader.readStream("w", "s")) again.push(v);
      expect(again).toEqual(upTo(N));
      const fromK: unknown[] = [];
      for await (const v of reader.readStream("w", "s", { offset: K })) fromK.push(v);
      expect(fromK).toEqual(upTo(N).slice(K));
    });

    it("killed at an arbitrary point while writing: a DuroClient reader yields 0…N-1 exactly once and ends at close", async () => {
      const url = freshDatabaseUrl(backend);
      const client = openClient(url);
      const N = 150;
      const first = new MessagingChild(url, EXECUTOR, { mode: "writer", id: "w", n: N, stepMs: 2 });
      await first.waitForEvent((e) => e.ev === "started", "the writer started");
      const seen: unknown[] = [];
      const reading = (async () => {
        for await (const v of client.readStream("w", "s", { timeoutSeconds: 30 })) seen.push(v);
      })();
      await first.waitForCount("wrote", randomInt(15, 50));
      expect(await first.kill(), "the writer was still running").toBe(true);
      expect(first.named("closed"), "killed before the stream was closed").toHaveLength(0);
      expect(seen.length).toBeLessThan(N);

      const second = new MessagingChild(url, EXECUTOR, { mode: "writer", id: "w", n: N });
      expect(await second.finish()).toBe(N);
      await reading;
      expect(seen).toEqual(upTo(N));
      const again: unknown[] = [];
      for await (const v of client.readStream("w", "s")) again.push(v);
      expect(again).toEqual(upTo(N));
    });
  });

  describe("send with an idempotencyKey across a crash of the sender", () => {
    it("outside a workflow: the killed sender's last sends, repeated by a new process with the same keys, are delivered once", async () => {
      const url = freshDatabaseUrl(backend);
      let collector!: ReturnType<typeof registerCollector>;
      const parent = await openDuro(url, (d) => (collector = registerCollector(d)));
      const inbox = await parent.startWorkflow(collector.with({ workflowId: "inbox" }));
      const N = 100;
      const first = new MessagingChild(url, EXECUTOR, { mode: "client-sender", dest: "inbox", from: 0, to: N, prefix: "k", paceMs: 2 });
      await first.waitForCount("sent", randomInt(5, 30));
      expect(await first.kill()).toBe(true);
      // Retry from the last send known to be delivered: it, and the one in doubt after it, are sent again.
      const lastSent = Math.max(...first.named("sent").map((e) => e.i));
      expect(lastSent).toBeLessThan(N - 1);
      // Delivered so far: every send that resolved, and perhaps the one in flight at the kill.
      expect((await messagesOf(url, "inbox")).length - (lastSent + 1)).toBeOneOf([0, 1]);

      const second = new MessagingChild(url, EXECUTOR, { mode: "client-sender", dest: "inbox", from: lastSent, to: N, prefix: "k" });
      await second.finish();
      await parent.send("inbox", "end", "t");
      expect(await inbox.getResult()).toEqual([...upTo(N), "end"]);
      expect(await messagesOf(url, "inbox")).toEqual([...upTo(N), "end"].map((m) => ({ m, consumed: true })));
    });

    it("inside a workflow: a sender killed mid-loop and recovered delivers each keyed message once, in order", async () => {
      const url = freshDatabaseUrl(backend);
      let collector!: ReturnType<typeof registerCollector>;
      const parent = await openDuro(url, (d) => (collector = registerCollector(d)));
      const inbox = await parent.startWorkflow(collector.with({ workflowId: "inbox" }));
      const N = 100;
      const params = { mode: "workflow-sender", id: "outbox", dest: "inbox", n: N, prefix: "wk", paceMs: 2 };
      const first = new MessagingChild(url, EXECUTOR, params);
      await first.waitForCount("sent", randomInt(5, 30));
      expect(await first.kill()).toBe(true);
      expect(first.named("sent").length).toBeLessThan(N);
      // A send in a workflow is delivered, then recorded: at most the one in flight at the kill is
      // delivered without its record (its replay must then not deliver it again).
      const delivered = (await messagesOf(url, "inbox")).length;
      const recorded = (await parent.listWorkflowSteps("outbox")).filter((s) => s.functionName === "duro.send").length;
      expect(delivered - recorded).toBeOneOf([0, 1]);

      const second = new MessagingChild(url, EXECUTOR, params);
      expect(await second.finish()).toBe(N);
      await parent.send("inbox", "end", "t");
      expect(await inbox.getResult()).toEqual([...upTo(N), "end"]);
      expect(await messagesOf(url, "inbox")).toEqual([...upTo(N), "end"].map((m) => ({ m, consumed: true })));
      const sends = (await parent.listWorkflowSteps("outbox")).filter((s) => s.functionName === "duro.send");
      expect(sends).toHaveLength(N);
    });
  });
});
