/**
 * Bad input to the messaging operations (issue 4): payloads of 10 MB or more, values that cannot
 * be serialized, and empty or non-string keys/topics get a typed error — SerializationError or
 * InvalidArgumentError — and leave nothing behind: no workflow row, no message, no event, no
 * stream value, no recorded operation.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Duro, DuroClient, InvalidArgumentError, SerializationError, WorkflowQueue } from "../../src/index.js";
import { backends, freshDatabaseUrl, rawQuery } from "../helpers.js";

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const LIMIT = 10 * 1024 * 1024;
const HUGE = "x".repeat(LIMIT); // 10 MB of characters: over the limit once serialized
const HUGE_MULTIBYTE = "€".repeat(Math.ceil(LIMIT / 3)); // 3.5 M characters, but ≥ 10 MB as UTF-8

const opened: { shutdown(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((d) => d.shutdown()));
});

/** The error a promise rejects with (a synchronous throw counts too); undefined if it resolves. */
async function errorOf(call: () => Promise<unknown> | unknown): Promise<unknown> {
  try {
    await call();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Reads a whole stream (the reader is an async iterable: errors surface on the first next()). */
async function drain(iterable: AsyncIterable<unknown>): Promise<unknown[]> {
  const values: unknown[] = [];
  for await (const v of iterable) values.push(v);
  return values;
}

function unserializables(): [string, unknown][] {
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  const circularArray: unknown[] = [1];
  circularArray.push({ back: circularArray });
  return [
    ["a function", () => 1],
    ["a circular object", circular],
    ["a circular array", circularArray],
    ["a Symbol", Symbol("s")],
    ["a function inside an object", { ok: 1, f() {} }],
    ["a Symbol inside an array", [1, Symbol("t")]],
  ];
}

describe.each(backends)("%s", (backend) => {
  /**
   * A launched Duro with:
   * - "inbox": receives on "t" until "end" and returns what it got (the destination of sends);
   * - "probe": runs `attempts` (set by the test) inside a workflow, collects each attempt's error
   *   class, then writes one good event and stream value, closes the stream, and returns the names;
   * - "echo": returns its argument (the target of bad workflow arguments), also on queue "q".
   */
  async function setup() {
    const url = freshDatabaseUrl(backend);
    const duro = new Duro({ databaseUrl: url, executorId: "bad-input", logger: quiet });
    opened.push(duro);
    const probeAttempts: { attempts: [string, () => Promise<unknown>][] } = { attempts: [] };
    const inbox = duro.registerWorkflow("inbox", async () => {
      const got: unknown[] = [];
      for (;;) {
        const m = await duro.recv("t", 30);
        got.push(m);
        if (m === "end" || m === null) return got;
      }
    });
    const probe = duro.registerWorkflow("probe", async () => {
      const outcome: Record<string, string> = {};
      for (const [name, attempt] of probeAttempts.attempts) {
        outcome[name] = await attempt().then(
          () => "accepted",
          (e: Error) => e.constructor.name,
        );
      }
      await duro.setEvent("good", "yes");
      await duro.writeStream("s", "good");
      await duro.closeStream("s");
      return outcome;
    });
    const echo = duro.registerWorkflow("echo", async (x: unknown) => x);
    new WorkflowQueue(duro, "q");
    await duro.launch();
    const box = await duro.startWorkflow(inbox.with({ workflowId: "box" }));
    return { url, duro, probe, probeAttempts, echo, box };
  }

  /** Runs the probe workflow with these attempts and checks that only its own good writes exist. */
  async function runProbe(env: Awaited<ReturnType<typeof setup>>, attempts: [string, () => Promise<unknown>][], expected: string) {
    env.probeAttempts.attempts = attempts;
    const handle = await env.duro.startWorkflow(env.probe.with({ workflowId: "probe" }));
    const outcome = (await handle.getResult()) as Record<string, string>;
    expect(outcome).toEqual(Object.fromEntries(attempts.map(([name]) => [name, expected])));
    // Nothing of the refused calls was written: only the good event, the good stream value and their records.
    expect(await env.duro.getAllEvents("probe")).toEqual({ good: "yes" });
    expect(await drain(env.duro.readStream("probe", "s"))).toEqual(["good"]);
    const steps = await env.duro.listWorkflowSteps("probe");
    expect(steps.map((s) => s.functionName)).toEqual(["duro.setEvent", "duro.writeStream", "duro.closeStream"]);
    expect(steps.every((s) => s.error === null)).toBe(true);
  }

  /** No message reached "box" but those sent after this: the next one received is `next`. */
  async function expectInboxReceivesOnly(env: Awaited<ReturnType<typeof setup>>, next: unknown[]) {
    for (const m of next) await env.duro.send("box", m, "t");
    await env.duro.send("box", "end", "t");
    expect(await env.box.getResult()).toEqual([...next, "end"]);
    const rows = await rawQuery(env.url, "SELECT message FROM notifications WHERE destination_id = $1", ["box"]);
    expect(rows).toHaveLength(next.length + 1);
  }

  async function workflowIds(duro: Duro): Promise<string[]> {
    return (await duro.listWorkflows({ loadInput: false, loadOutput: false })).map((w) => w.workflowId).sort();
  }

  describe("payloads of 10 MB or more → SerializationError, nothing written", () => {
    it("send (outside and inside a workflow), setEvent and writeStream (inside a workflow)", async () => {
      const env = await setup();
      const { duro } = env;
      for (const payload of [HUGE, HUGE_MULTIBYTE, { nested: [HUGE] }]) {
        expect(await errorOf(() => duro.send("box", payload, "t"))).toBeInstanceOf(SerializationError);
        expect(await errorOf(() => duro.send("box", payload, "t", { idempotencyKey: "big" }))).toBeInstanceOf(SerializationError);
      }
      const client = new DuroClient({ databaseUrl: env.url, logger: quiet });
      opened.push({ shutdown: () => client.close() });
      expect(await errorOf(() => client.send("box", HUGE, "t"))).toBeInstanceOf(SerializationError);

      await runProbe(
        env,
        [
          ["setEvent", () => duro.setEvent("big", HUGE)],
          ["setEvent multibyte", () => duro.setEvent("big", HUGE_MULTIBYTE)],
          ["writeStream", () => duro.writeStream("s", HUGE)],
          ["writeStream nested", () => duro.writeStream("s", { v: HUGE })],
          ["send", () => duro.send("box", HUGE, "t")],
          ["send keyed", () => duro.send("box", HUGE, "t", { idempotencyKey: "big-in-wf" })],
        ],
        "SerializationError",
      );
      expect(await duro.getEvent("probe", "big", 0)).toBeNull();
      // The refused sends left no message: the inbox's next message is the first good one, and
      // the refused idempotency key was not used up.
      await duro.send("box", "small", "t", { idempotencyKey: "big" });
      await duro.send("box", "end", "t");
      expect(await env.box.getResult()).toEqual(["small", "end"]);
      expect(await rawQuery(env.url, "SELECT message FROM notifications WHERE destination_id = $1", ["box"])).toHaveLength(2);
    });

    it("as a workflow argument: startWorkflow, a direct call, a queue, enqueueMany and DuroClient.enqueue create no workflow", async () => {
      const env = await setup();
      const { duro, echo } = env;
      const before = await workflowIds(duro);
      const calls: [string, () => Promise<unknown>][] = [
        ["startWorkflow", () => duro.startWorkflow(echo.with({ workflowId: "big-1" }), HUGE)],
        ["startWorkflow multibyte", () => duro.startWorkflow(echo.with({ workflowId: "big-2" }), HUGE_MULTIBYTE)],
        ["direct call", () => echo.with({ workflowId: "big-3" })(HUGE)],
        ["queue", () => duro.startWorkflow(echo.with({ workflowId: "big-4", queueName: "q" }), HUGE)],
        ["enqueueMany, one of three too big", () => duro.enqueueMany(echo.with({ queueName: "q" }), [["a"], [HUGE], ["c"]])],
      ];
      for (const [name, call] of calls) expect(await errorOf(call), name).toBeInstanceOf(SerializationError);
      const client = new DuroClient({ databaseUrl: env.url, logger: quiet });
      opened.push({ shutdown: () => client.close() });
      expect(await errorOf(() => client.enqueue({ workflowName: "echo", queueName: "q", workflowId: "big-5" }, HUGE))).toBeInstanceOf(SerializationError);

      expect(await workflowIds(duro)).toEqual(before);
      expect(await duro.listQueuedWorkflows({})).toEqual([]);
      for (const id of ["big-1", "big-2", "big-3", "big-4", "big-5"]) expect(await duro.getWorkflowStatus(id)).toBeNull();
      // The IDs are still free.
      expect(await echo.with({ workflowId: "big-1" })("small")).toBe("small");
    });

    it("a payload just under the limit is accepted and arrives intact", async () => {
      const env = await setup();
      const justUnder = "y".repeat(LIMIT - 64);
      await env.duro.send("box", justUnder, "t");
      await env.duro.send("box", "end", "t");
      const got = (await env.box.getResult()) as string[];
      expect(got).toHaveLength(2);
      expect(got[0].length).toBe(justUnder.length);
      expect(got[0] === justUnder).toBe(true);
    });
  });

  describe("values that cannot be serialized → SerializationError, nothing written", () => {
    it("send, setEvent, writeStream, and as a workflow argument", async () => {
      const env = await setup();
      const { duro, echo } = env;
      const before = await workflowIds(duro);
      const values = unserializables();
      for (const [what, value] of values) {
        expect(await errorOf(() => duro.send("box", value, "t")), `send of ${what}`).toBeInstanceOf(SerializationError);
        expect(await errorOf(() => duro.startWorkflow(echo, value)), `startWorkflow with ${what}`).toBeInstanceOf(SerializationError);
        expect(await errorOf(() => echo(value)), `direct call with ${what}`).toBeInstanceOf(SerializationError);
        expect(await errorOf(() => duro.startWorkflow(echo.with({ queueName: "q" }), value)), `enqueue of ${what}`).toBeInstanceOf(SerializationError);
      }
      expect(await workflowIds(duro)).toEqual(before);

      await runProbe(
        env,
        values.flatMap(([what, value]): [string, () => Promise<unknown>][] => [
          [`setEvent ${what}`, () => duro.setEvent("bad", value)],
          [`writeStream ${what}`, () => duro.writeStream("s", value)],
          [`send ${what}`, () => duro.send("box", value, "t")],
        ]),
        "SerializationError",
      );
      expect(await workflowIds(duro)).toEqual([...before, "probe"].sort());
      await expectInboxReceivesOnly(env, ["fine"]);
    });
  });

  describe("empty or non-string keys and topics → InvalidArgumentError, nothing written", () => {
    const badKeys: [string, unknown][] = [
      ['""', ""],
      ["5", 5],
      ["an object", { key: "k" }],
      ["true", true],
    ];

    it("send topic, getEvent key and workflow ID, readStream key, DuroClient send/getEvent", async () => {
      const env = await setup();
      const { duro } = env;
      const client = new DuroClient({ databaseUrl: env.url, logger: quiet });
      opened.push({ shutdown: () => client.close() });
      for (const [what, bad] of badKeys) {
        const calls: [string, () => unknown][] = [
          ["send topic", () => duro.send("box", "m", bad as string)],
          ["send destination", () => duro.send(bad as string, "m", "t")],
          ["send idempotencyKey", () => duro.send("box", "m", "t", { idempotencyKey: bad as string })],
          ["getEvent key", () => duro.getEvent("box", bad as string, 0)],
          ["getEvent workflowId", () => duro.getEvent(bad as string, "k", 0)],
          ["readStream key", () => drain(duro.readStream("box", bad as string, { timeoutSeconds: 0 }))],
          ["client send topic", () => client.send("box", "m", bad as string)],
          ["client getEvent key", () => client.getEvent("box", bad as string, 0)],
        ];
        for (const [name, call] of calls) expect(await errorOf(call), `${name} ${what}`).toBeInstanceOf(InvalidArgumentError);
      }
      // The name under which messages without a topic are stored is not a topic of its own.
      for (const call of [() => duro.send("box", "m", "__null__topic__"), () => client.send("box", "m", "__null__topic__")]) {
        expect(await errorOf(call)).toBeInstanceOf(InvalidArgumentError);
      }
      await expectInboxReceivesOnly(env, ["fine"]);
    });

    it("setEvent key, writeStream / closeStream key and recv topic inside a workflow", async () => {
      const env = await setup();
      const { duro } = env;
      await runProbe(
        env,
        badKeys.flatMap(([what, bad]): [string, () => Promise<unknown>][] => [
          [`setEvent ${what}`, () => duro.setEvent(bad as string, "v")],
          [`writeStream ${what}`, () => duro.writeStream(bad as string, "v")],
          [`closeStream ${what}`, () => duro.closeStream(bad as string)],
          [`recv ${what}`, () => duro.recv(bad as string, 0)],
          [`getEvent ${what}`, () => duro.getEvent("box", bad as string, 0)],
          [`send ${what}`, () => duro.send("box", "m", bad as string)],
        ]).concat([["recv of the reserved topic", () => duro.recv("__null__topic__", 0)]]),
        "InvalidArgumentError",
      );
      await expectInboxReceivesOnly(env, ["fine"]);
    });
  });

  describe("a serialization that is neither \"default\" nor \"portable\" → InvalidArgumentError, nothing written", () => {
    it("send (outside and inside a workflow, and DuroClient's), setEvent and writeStream", async () => {
      const env = await setup();
      const { duro } = env;
      const client = new DuroClient({ databaseUrl: env.url, logger: quiet });
      opened.push({ shutdown: () => client.close() });
      const bad = [{ serialization: "xml" }, { serializationType: "json" }, { serialization: 1 }] as unknown as { serialization: "default" }[];
      for (const options of bad) {
        expect(await errorOf(() => duro.send("box", "m", "t", options)), JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
        expect(await errorOf(() => client.send("box", "m", "t", options)), JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      }
      await runProbe(
        env,
        bad.flatMap((options): [string, () => Promise<unknown>][] => [
          [`setEvent ${JSON.stringify(options)}`, () => duro.setEvent("k", "v", options)],
          [`writeStream ${JSON.stringify(options)}`, () => duro.writeStream("s", "v", options)],
          [`send ${JSON.stringify(options)}`, () => duro.send("box", "m", "t", options)],
        ]),
        "InvalidArgumentError",
      );
      await expectInboxReceivesOnly(env, ["fine"]);
    });
  });
});
