/**
 * Bad input to the management API: unknown IDs are WorkflowNotFoundError, malformed arguments
 * are InvalidArgumentError, and a call that fails changes nothing at all.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Duro, DuroClient, InvalidArgumentError, WorkflowNotFoundError, WorkflowQueue } from "../../src/index.js";
import { backends, quietLogger, rejectionOf, useDuro } from "../helpers.js";
import { snapshot } from "./support.js";

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  /** A database with a finished, a failed, a cancelled and a DELAYED workflow. */
  async function fixture(): Promise<Duro> {
    const duro = t.duro();
    new WorkflowQueue(duro, "q");
    const step = duro.registerStep("step", async (x: number) => x + 1);
    const ok = duro.registerWorkflow("ok", async (x: number) => step(x));
    const bad = duro.registerWorkflow("bad", async () => {
      throw new Error("bad");
    });
    const waits = duro.registerWorkflow("waits", async () => duro.recv("go", 60));
    await duro.launch();
    await duro.startWorkflow(ok.with({ workflowId: "ok" }), 1).then((h) => h.getResult());
    await duro.startWorkflow(bad.with({ workflowId: "bad" })).then((h) => h.getResult().catch(() => undefined));
    await duro.startWorkflow(waits.with({ workflowId: "cancelled" }));
    await duro.cancelWorkflow("cancelled");
    await duro.startWorkflow(ok.with({ workflowId: "delayed", queueName: "q", delaySeconds: 3600 }), 2);
    return duro;
  }

  it("unknown IDs: WorkflowNotFoundError from retrieveWorkflow, resume, fork and setWorkflowDelay; no steps from listWorkflowSteps", async () => {
    const duro = await fixture();
    const before = await snapshot(duro);
    // A listing, as in the reference library: an unknown workflow has no steps.
    expect(await duro.listWorkflowSteps("nobody")).toEqual([]);
    expect(await duro.listWorkflowSteps("nobody", { limit: 5, offset: 2 })).toEqual([]);
    const calls: [string, () => Promise<unknown>][] = [
      ["retrieveWorkflow", () => duro.retrieveWorkflow("nobody")],
      ["resumeWorkflow", () => duro.resumeWorkflow("nobody")],
      ["resumeWorkflows", () => duro.resumeWorkflows(["cancelled", "nobody"])],
      ["resumeWorkflow onto a queue", () => duro.resumeWorkflow("nobody", { queueName: "q" })],
      ["forkWorkflow", () => duro.forkWorkflow("nobody", 1)],
      ["forkWorkflow with a new ID", () => duro.forkWorkflow("nobody", 1, { newWorkflowId: "fork-of-nobody" })],
      ["setWorkflowDelay seconds", () => duro.setWorkflowDelay("nobody", { delaySeconds: 5 })],
      ["setWorkflowDelay epoch", () => duro.setWorkflowDelay("nobody", { delayUntilEpochMs: Date.now() + 5000 })],
      ["getResult", () => duro.getResult("nobody")],
    ];
    for (const [name, call] of calls) {
      const error = await call().then(
        () => undefined,
        (e) => e,
      );
      expect(error, name).toBeInstanceOf(WorkflowNotFoundError);
      expect(error.workflowId, name).toBe("nobody");
    }
    expect(await snapshot(duro)).toEqual(before);
    expect(await duro.getWorkflowStatus("fork-of-nobody")).toBeNull();
  });

  it("IDs, names and keys of up to 1,024 bytes are kept on both databases, even incompressible ones", async () => {
    const longest = (tag: string) => `${tag}-${randomBytes(1024).toString("base64")}`.slice(0, 1024);
    // As long, and different: the last character changed (a random one may already be "2").
    const sibling = (text: string) => `${text.slice(0, -1)}${text.endsWith("2") ? "3" : "2"}`;
    const [id, key, topic, queue, dedup, partition, name, version] = ["id", "key", "topic", "queue", "dedup", "part", "name", "version"].map(longest);
    const duro = t.duro({ appVersion: version, executorId: longest("executor") });
    new WorkflowQueue(duro, queue, { partitionQueue: true });
    new WorkflowQueue(duro, sibling(queue));
    const wf = duro.registerWorkflow(name, async () => {
      await duro.setEvent(key, 1);
      await duro.writeStream(key, 2);
      await duro.closeStream(key);
      return duro.recv(topic, 10);
    });
    await duro.launch();
    const handle = await duro.startWorkflow(wf.with({ workflowId: id, queueName: queue, partitionKey: partition }));
    const deduplicated = await duro.startWorkflow(wf.with({ workflowId: sibling(id), queueName: sibling(queue), deduplicationId: dedup }));
    for (const to of [id, deduplicated.workflowId]) await duro.send(to, "message", topic, { idempotencyKey: longest("idem") });
    expect([await handle.getResult(), await deduplicated.getResult()]).toEqual(["message", "message"]);
    expect(await duro.getEvent(id, key)).toBe(1);
    const values: unknown[] = [];
    for await (const value of duro.readStream(id, key)) values.push(value);
    expect(values).toEqual([2]);
    expect((await duro.getWorkflowStatus(id))!).toMatchObject({ workflowName: name, queueName: queue, appVersion: version });
    const tooLong = `${longest("id")}x`;
    const error = await rejectionOf(duro.startWorkflow(wf.with({ workflowId: tooLong })));
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(error.message).toMatch(/workflowId is 1025 bytes as UTF-8 .*the limit is 1024/);
    // A limit in bytes: 342 three-byte characters are over it.
    await expect(duro.startWorkflow(wf.with({ workflowId: "€".repeat(342) }))).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(await duro.getWorkflowStatus("€".repeat(341))).toBeNull();
  });

  it("IDs, names and keys with a NUL or a lone surrogate (which no database keeps as they are), or over 1,024 bytes, are InvalidArgumentError", async () => {
    const duro = await fixture();
    const wf = duro.registerWorkflow("plain", async () => "ran");
    const before = await snapshot(duro);
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    try {
      for (const odd of ["a\u0000b", "x\uD800", "\uDC00y", "y".repeat(1025)]) {
        const calls: [string, () => unknown][] = [
          ["startWorkflow", () => duro.startWorkflow(wf.with({ workflowId: odd }))],
          ["enqueue", () => duro.startWorkflow(wf.with({ workflowId: odd, queueName: "q" }))],
          ["authenticatedUser", () => duro.startWorkflow(wf.with({ authenticatedUser: odd }))],
          ["client enqueue", () => client.enqueue({ workflowName: "plain", queueName: "q", workflowId: odd })],
          ["client enqueue name", () => client.enqueue({ workflowName: odd, queueName: "q" })],
          ["getWorkflowStatus", () => duro.getWorkflowStatus(odd)],
          ["client getWorkflowStatus", () => client.getWorkflowStatus(odd)],
          ["retrieveWorkflow", () => duro.retrieveWorkflow(odd)],
          ["client retrieveWorkflow", () => client.retrieveWorkflow(odd)],
          ["getResult", () => duro.getResult(odd)],
          ["getAllEvents", () => duro.getAllEvents(odd)],
          ["listWorkflowSteps", () => duro.listWorkflowSteps(odd)],
          ["client listWorkflowSteps", () => client.listWorkflowSteps(odd)],
          ["forkWorkflow source", () => duro.forkWorkflow(odd, 1)],
          ["forkWorkflow new ID", () => duro.forkWorkflow("ok", 1, { newWorkflowId: odd })],
          ["setWorkflowDelay", () => duro.setWorkflowDelay(odd, { delaySeconds: 1 })],
          ["client setWorkflowDelay", () => client.setWorkflowDelay(odd, { delaySeconds: 1 })],
          ["listWorkflows workflowIds", () => duro.listWorkflows({ workflowIds: ["ok", odd] })],
          ["listWorkflows name", () => duro.listWorkflows({ name: odd })],
          ["listWorkflows workflowIdPrefix", () => duro.listWorkflows({ workflowIdPrefix: odd })],
          ["listQueuedWorkflows queueName", () => duro.listQueuedWorkflows({ queueName: [odd] })],
          ["client listWorkflows user", () => client.listWorkflows({ user: odd })],
          ["cancelWorkflow", () => duro.cancelWorkflow(odd)],
          ["resumeWorkflow", () => duro.resumeWorkflow(odd)],
          ["send", () => duro.send("cancelled", "m", odd)],
          ["registerWorkflow", () => duro.registerWorkflow(odd, async () => 1)],
          ["registerStep", () => duro.registerStep(odd, async () => 1)],
          ["Duro appVersion", () => new Duro({ databaseUrl: t.url, appVersion: odd })],
          ["Duro executorId", () => new Duro({ databaseUrl: t.url, executorId: odd })],
          ["WorkflowQueue name", () => new WorkflowQueue(duro, odd)],
        ];
        for (const [name, call] of calls) {
          const error = await Promise.resolve().then(call).then(() => undefined, (e) => e);
          expect(error, `${name} ${JSON.stringify(odd)}`).toBeInstanceOf(InvalidArgumentError);
        }
      }
      // No executor runs the empty version: a workflow stored with it would wait forever.
      await expect(duro.startWorkflow(wf.with({ appVersion: "", queueName: "q" }))).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(client.enqueue({ workflowName: "plain", queueName: "q", appVersion: "" })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(duro.forkWorkflow("ok", 1, { appVersion: "" })).rejects.toBeInstanceOf(InvalidArgumentError);
    } finally {
      await client.close();
    }
    expect(await snapshot(duro)).toEqual(before);
    // Well-formed pairs and other unusual characters are kept exactly.
    for (const id of ["emoji-😀", "tab\tnewline\n", "é\u200B"]) {
      expect(await duro.startWorkflow(wf.with({ workflowId: id })).then((h) => h.getResult())).toBe("ran");
      expect((await duro.getWorkflowStatus(id))!.workflowId).toBe(id);
    }
  });

  it("a negative or fractional limit/offset and a malformed time are InvalidArgumentError", async () => {
    const duro = await fixture();
    const before = await snapshot(duro);
    const filters = [
      { limit: -1 }, { limit: 2.5 }, { offset: -3 }, { offset: Number.NaN }, { limit: Number.POSITIVE_INFINITY },
      { startTime: "not a time" }, { endTime: "2024-01-01T25:00:00Z" }, { startTime: "" }, { endTime: "12:00" },
      { startTime: 1_700_000_000_000 as unknown as string },
      { status: "FINISHED" as never }, { name: 42 as unknown as string }, { workflowIds: "ok" as unknown as string[] },
      { limit: 1e20 }, { offset: 2 ** 53 }, { startTime: new Date(Number.NaN) as never },
      // Not coerced: "false" is a true value, and would have sorted newest first.
      { sortDesc: "false" as never }, { loadInput: 0 as never }, { loadOutput: "no" as never }, { hasParent: 1 as never },
    ];
    for (const filter of filters) {
      await expect.soft(duro.listWorkflows(filter), JSON.stringify(filter)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect.soft(duro.listQueuedWorkflows(filter), JSON.stringify(filter)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    // A date that does not exist is malformed too (Date.parse would quietly read it as 1 March).
    expect.soft(await duro.listWorkflows({ startTime: "2024-02-30T00:00:00Z" }).then(() => "accepted", (e) => e.name)).toBe("InvalidArgumentError");
    expect.soft(await duro.listQueuedWorkflows({ endTime: "2023-06-31T00:00:00Z" }).then(() => "accepted", (e) => e.name)).toBe("InvalidArgumentError");
    for (const options of [{ limit: -1 }, { offset: -1 }, { limit: 0.5 }, { limit: 1e20 }, { offset: 2 ** 53 }]) {
      await expect(duro.listWorkflowSteps("ok", options), JSON.stringify(options)).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    // Past the databases' limits on a statement's parameters, a listing is refused, told to go in parts.
    const many = Array.from({ length: 5001 }, (_, i) => `id-${i}`);
    expect((await rejectionOf(duro.listWorkflows({ workflowIds: many }))).message).toMatch(/at most 5000 values in all .*, got 5001: list in parts/);
    expect(await duro.listWorkflows({ workflowIds: many.slice(0, 5000) })).toEqual([]);
    // A resume of many IDs names the unknown one (found in parts), on both databases.
    const error = await rejectionOf(duro.resumeWorkflows([...Array.from({ length: 40_000 }, () => "cancelled"), "nobody"]));
    expect(error).toBeInstanceOf(WorkflowNotFoundError);
    expect(error.workflowId).toBe("nobody");
    // A string that looks like a number is shown as a string.
    expect((await rejectionOf(duro.listWorkflows({ limit: "3" as never }))).message).toContain('got "3"');
    expect(await snapshot(duro)).toEqual(before);
    // A Date is taken where an RFC 3339 time is.
    const ids = (rows: { workflowId: string }[]) => rows.map((r) => r.workflowId);
    const since = (await duro.getWorkflowStatus("bad"))!.createdAt;
    expect(ids(await duro.listWorkflows({ startTime: new Date(since) }))).toEqual(ids(await duro.listWorkflows({ startTime: new Date(since).toISOString() })));
    expect(ids(await duro.listWorkflows({ startTime: new Date(since) }))).toContain("bad");
  });

  it("malformed management arguments are InvalidArgumentError and change nothing", async () => {
    const duro = await fixture();
    const before = await snapshot(duro);
    const calls: [string, () => Promise<unknown>][] = [
      ["setWorkflowDelay without a delay", () => duro.setWorkflowDelay("delayed", {})],
      ["setWorkflowDelay with both", () => duro.setWorkflowDelay("delayed", { delaySeconds: 1, delayUntilEpochMs: Date.now() })],
      ["setWorkflowDelay negative", () => duro.setWorkflowDelay("delayed", { delaySeconds: -5 })],
      ["setWorkflowDelay NaN", () => duro.setWorkflowDelay("delayed", { delayUntilEpochMs: Number.NaN })],
      ["cancelWorkflows of a string", () => duro.cancelWorkflows("ok" as unknown as string[])],
      ["cancelWorkflow of an empty ID", () => duro.cancelWorkflow("")],
      ["retrieveWorkflow of an empty ID", () => duro.retrieveWorkflow("")],
      ["listWorkflowSteps of an empty ID", () => duro.listWorkflowSteps("")],
      ["forkWorkflow of an empty ID", () => duro.forkWorkflow("", 1)],
      ["forkWorkflow of an array", () => duro.forkWorkflow(["ok"] as unknown as string, 1)],
      ["setWorkflowDelay of an empty ID", () => duro.setWorkflowDelay("", { delaySeconds: 1 })],
      ["getWorkflowStatus of a number", () => duro.getWorkflowStatus(7 as unknown as string)],
      ["resumeWorkflows of a string", () => duro.resumeWorkflows("cancelled" as unknown as string[])],
      ["resume onto an unknown queue", () => duro.resumeWorkflow("cancelled", { queueName: "nope" })],
      ["fork step 1.5", () => duro.forkWorkflow("ok", 1.5)],
      ["fork step NaN", () => duro.forkWorkflow("ok", Number.NaN)],
      ["fork negative timeout", () => duro.forkWorkflow("ok", 1, { timeoutSeconds: -1 })],
    ];
    for (const [name, call] of calls) {
      // A method that returns a promise reports bad input by rejecting it, not by throwing.
      let result: Promise<unknown>;
      try {
        result = call();
      } catch (error) {
        expect.soft(`${name} threw synchronously`).toBe(`${name} returned a rejected promise`);
        result = Promise.reject(error);
      }
      await expect.soft(result, name).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    expect(await snapshot(duro)).toEqual(before);
    // The delayed workflow is still there, still delayed by an hour.
    expect((await duro.getWorkflowStatus("delayed"))!.delayUntilEpochMs).toBeGreaterThan(Date.now() + 3_000_000);
  });

  it("an options object with a misspelt key is InvalidArgumentError naming the keys it takes, and changes nothing", async () => {
    const duro = await fixture();
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    const ok = duro.registerWorkflow("ok2", async (x: number) => x);
    const typo = <T>(options: T, key: string) => ({ ...options, [key]: 1 }) as T;
    try {
      const before = await snapshot(duro);
      // Checked where they are given, before anything runs or is written.
      const thrown: [string, RegExp, () => unknown][] = [
        ["new Duro", /databaseUrl/, () => new Duro(typo({ databaseUrl: t.url }, "databaseURL"))],
        ["new DuroClient", /connectTimeoutSeconds/, () => new DuroClient(typo({ databaseUrl: t.url }, "databaseURL"))],
        ["registerWorkflow", /serialization/, () => duro.registerWorkflow("w", async () => 1, typo({}, "serialisation"))],
        ["registerStep", /retriesAllowed/, () => duro.registerStep("s", async () => 1, typo({ retriesAllowed: true }, "maxAttempt"))],
        ["with", /queueName/, () => ok.with(typo({}, "queue"))],
        ["with a string", /queueName/, () => ok.with("q" as never)],
        ["WorkflowQueue", /workerConcurrency/, () => new WorkflowQueue(duro, "q2", typo({}, "concurency"))],
        ["WorkflowQueue rateLimit", /periodSeconds/, () => new WorkflowQueue(duro, "q3", { rateLimit: typo({ limit: 1, periodSeconds: 1 }, "period") })],
      ];
      for (const [name, keys, call] of thrown) {
        let error: unknown;
        try {
          call();
        } catch (e) {
          error = e;
        }
        expect.soft(error, name).toBeInstanceOf(InvalidArgumentError);
        expect.soft((error as Error)?.message, name).toMatch(keys);
      }
      const rejected: [string, () => Promise<unknown>][] = [
        ["runStep", () => duro.runStep(async () => 1, typo({}, "retries"))],
        ["schedule", () => duro.schedule("s", "* * * * *", ok as never, typo({}, "catchup"))],
        ["listWorkflows", () => duro.listWorkflows(typo({}, "workflowIDs"))],
        ["listQueuedWorkflows", () => duro.listQueuedWorkflows(typo({}, "queue"))],
        ["listWorkflowSteps", () => duro.listWorkflowSteps("ok", typo({}, "max"))],
        ["cancelWorkflow", () => duro.cancelWorkflow("delayed", typo({}, "children"))],
        ["resumeWorkflow", () => duro.resumeWorkflow("cancelled", typo({}, "queue"))],
        ["forkWorkflow", () => duro.forkWorkflow("ok", 1, typo({}, "newWorkflowID"))],
        ["setWorkflowDelay", () => duro.setWorkflowDelay("delayed", typo({ delaySeconds: 1 }, "delayUntil"))],
        ["wait", () => duro.wait([Promise.resolve(1)], typo({}, "timeout"))],
        ["waitFirst", async () => duro.waitFirst([await duro.retrieveWorkflow("ok")], typo({}, "pollingInterval"))],
        ["waitFirst pollingIntervalSec", async () => duro.waitFirst([await duro.retrieveWorkflow("ok")], { pollingIntervalSec: "1" as never })],
        ["readStream", () => duro.readStream("ok", "k", typo({}, "from"))[Symbol.asyncIterator]().next()],
        ["client enqueue", () => client.enqueue(typo({ workflowName: "ok", queueName: "q" }, "priorty"), 1)],
        ["client enqueueMany", () => client.enqueueMany(typo({ workflowName: "ok", queueName: "q" }, "priorty"), [[1]])],
        ["client listWorkflows", () => client.listWorkflows(typo({}, "workflowIDs"))],
        ["client resumeWorkflow", () => client.resumeWorkflow("cancelled", typo({}, "queue"))],
        ["client forkWorkflow", () => client.forkWorkflow("ok", 1, typo({}, "newWorkflowID"))],
      ];
      for (const [name, call] of rejected) await expect.soft(call(), name).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await snapshot(duro)).toEqual(before);
      expect((await duro.getWorkflowStatus("cancelled"))!.status).toBe("CANCELLED");
    } finally {
      await client.close();
    }
  });

  it("the same refusals through a DuroClient", async () => {
    const duro = await fixture();
    const client = new DuroClient({ databaseUrl: t.url, logger: quietLogger });
    try {
      const before = await snapshot(duro);
      expect(await client.listWorkflowSteps("nobody")).toEqual([]);
      await expect(client.retrieveWorkflow("nobody")).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(client.resumeWorkflows(["cancelled", "nobody"])).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(client.forkWorkflow("nobody", 1)).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(client.setWorkflowDelay("nobody", { delaySeconds: 1 })).rejects.toBeInstanceOf(WorkflowNotFoundError);
      await expect(client.listWorkflows({ offset: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(client.listWorkflows({ endTime: "soon" })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(client.forkWorkflow("ok", 2.5)).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(client.setWorkflowDelay("delayed", {})).rejects.toBeInstanceOf(InvalidArgumentError);
      expect(await snapshot(duro)).toEqual(before);
    } finally {
      await client.close();
    }
  });
});
