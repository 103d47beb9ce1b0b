/**
 * Serialization: "default" round-trips JavaScript values exactly; "portable" is plain JSON; a
 * value that cannot be stored fails with SerializationError before anything is written.
 *
 * Values are read back through a second Duro instance, so they really come from the database
 * (the instance that ran a workflow may answer from memory).
 */
import { types } from "node:util";
import { describe, expect, it } from "vitest";
import { SerializationError, type Duro } from "../../src/index.js";
import { backends, rawQuery, rejectionOf, useDuro } from "../helpers.js";

class ValidationFailed extends Error {
  constructor(
    message: string,
    readonly field: string,
    readonly details: { at: Date; codes: number[] },
  ) {
    super(message);
  }
}

const rich = () => ({
  when: new Date(Date.UTC(2024, 1, 29, 12, 30, 45, 678)),
  map: new Map<unknown, unknown>([
    ["a", 1],
    [2, { nested: new Set([1, 2]) }],
  ]),
  set: new Set(["x", "y"]),
  big: 12345678901234567890n,
  missing: undefined,
  list: [1, undefined, null, "s"],
  nothing: null,
  text: "héllo \u2603",
  float: 1.5,
  negZero: -0,
  inf: Infinity,
});

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  async function reader(): Promise<Duro> {
    const duro = t.duro({ executorId: "reader" });
    await duro.launch();
    return duro;
  }

  describe("default serialization", () => {
    it("workflow inputs and outputs round-trip Date, Map, Set, BigInt and undefined exactly", async () => {
      const duro = t.duro();
      const echo = duro.registerWorkflow("echo", async (value: ReturnType<typeof rich>) => value);
      await duro.launch();
      const handle = await duro.startWorkflow(echo, rich());
      await handle.getResult();
      const other = await reader();
      const output = await other.getResult<ReturnType<typeof rich>>(handle.workflowId);
      expect(output).toEqual(rich());
      expect(output.when).toBeInstanceOf(Date);
      expect(output.map).toBeInstanceOf(Map);
      expect(output.map.get(2)).toEqual({ nested: new Set([1, 2]) });
      expect(output.set).toBeInstanceOf(Set);
      expect(typeof output.big).toBe("bigint");
      expect(output.big).toBe(12345678901234567890n);
      expect("missing" in output).toBe(true);
      expect(output.missing).toBeUndefined();
      expect(output.list).toEqual([1, undefined, null, "s"]);
      expect(Object.is(output.negZero, -0)).toBe(true);
      expect(output.inf).toBe(Infinity);
      const status = (await other.getWorkflowStatus(handle.workflowId))!;
      expect(status.input).toEqual([rich()]);
    });

    it("undefined as a whole result and as an argument round-trips", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("undef", async (a: undefined, b: number) => (a === undefined ? undefined : b));
      await duro.launch();
      const handle = await duro.startWorkflow(wf, undefined, 3);
      await handle.getResult();
      const other = await reader();
      expect(await other.getResult(handle.workflowId)).toBeUndefined();
      expect((await other.getWorkflowStatus(handle.workflowId))!.input).toEqual([undefined, 3]);
    });

    it("step outputs round-trip through the record", async () => {
      const duro = t.duro();
      const step = duro.registerStep("richStep", async () => rich());
      const wf = duro.registerWorkflow("wf", async () => {
        await step();
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      const other = await reader();
      const [recorded] = await other.listWorkflowSteps(handle.workflowId);
      expect(recorded.output).toEqual(rich());
      expect((recorded.output as ReturnType<typeof rich>).map).toBeInstanceOf(Map);
    });

    it("an instance of a class of its own is stored as its fields: the first run gets that plain object too, as a replay and every caller do", async () => {
      class Point {
        constructor(readonly x: number) {}
        get double() {
          return this.x * 2;
        }
      }
      const duro = t.duro();
      const seen: unknown[] = [];
      const step = duro.registerStep("point", async () => new Point(3));
      const wf = duro.registerWorkflow("points", async () => {
        const p = await step();
        seen.push([p instanceof Point, (p as Point).double]);
        return new Point(4);
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const here = await handle.getResult();
      expect(here).toEqual({ x: 4 });
      expect(here).not.toBeInstanceOf(Point);
      expect(await (await reader()).getResult(handle.workflowId)).toEqual(here);
      // A replay of the step from its record (a fork at the workflow's end) sees what the first run saw.
      await (await duro.forkWorkflow(handle.workflowId, 2)).getResult();
      expect(seen).toEqual([[false, undefined], [false, undefined]]);
    });

    it("a thrown Error keeps its class, message, stack and own fields", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("invalid", async () => {
        throw new ValidationFailed("email is invalid", "email", { at: new Date(0), codes: [1, 2] });
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const original = await rejectionOf(handle.getResult());
      const other = await reader();
      const error = await rejectionOf(other.getResult(handle.workflowId));
      expect(error).toBeInstanceOf(ValidationFailed);
      expect(error.message).toBe("email is invalid");
      expect(error.field).toBe("email");
      expect(error.details.at).toBeInstanceOf(Date);
      expect(error.details).toEqual({ at: new Date(0), codes: [1, 2] });
      expect(error.stack).toBe(original.stack);
      expect(error.name).toBe("Error"); // ValidationFailed does not set its own name
    });

    it("errors read back are native errors: equal to one built here; AggregateError keeps its errors; a name set in a constructor stays an own field", async () => {
      class Named extends Error {
        constructor(message: string) {
          super(message);
          this.name = "Named";
        }
      }
      const duro = t.duro();
      const wf = duro.registerWorkflow("errors", async () => ({
        type: new TypeError("tt"),
        named: new Named("n"),
        aggregate: new AggregateError([new RangeError("r"), "plain"], "several"),
      }));
      const thrower = duro.registerWorkflow("throwsType", async () => {
        throw new TypeError("thrown");
      });
      await duro.launch();
      const values = await duro.startWorkflow(wf);
      await values.getResult();
      const thrown = await duro.startWorkflow(thrower);
      await rejectionOf(thrown.getResult());
      const other = await reader();
      const { type, named, aggregate } = await other.getResult<{ type: TypeError; named: Named; aggregate: AggregateError }>(values.workflowId);
      expect(types.isNativeError(type)).toBe(true);
      expect(Object.prototype.toString.call(type)).toBe("[object Error]");
      expect(type).toEqual(new TypeError("tt"));
      expect(named).toBeInstanceOf(Named);
      expect(Object.keys(named)).toEqual(["name"]);
      expect(named.name).toBe("Named");
      expect(aggregate).toBeInstanceOf(AggregateError);
      expect(aggregate.errors).toEqual([new RangeError("r"), "plain"]);
      expect(aggregate.errors[0]).toBeInstanceOf(RangeError);
      expect(Object.keys(aggregate)).toEqual([]);
      await expect(other.getResult(thrown.workflowId)).rejects.toEqual(new TypeError("thrown"));
    });

    it("an Error used as a value (not thrown) round-trips too, with its cause", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("errValue", async () => ({ problem: new TypeError("as a value", { cause: new Error("root") }) }));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await handle.getResult();
      const other = await reader();
      const { problem } = await other.getResult<{ problem: TypeError }>(handle.workflowId);
      expect(problem).toBeInstanceOf(TypeError);
      expect(problem.message).toBe("as a value");
      expect(problem.cause).toBeInstanceOf(Error);
      expect((problem.cause as Error).message).toBe("root");
    });

    it("user objects that look like internal tags are kept as they are", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("tags", async (x: unknown) => x);
      await duro.launch();
      const tricky = { $duro: "Date", v: 0, type: "Map", __proto__x: 1, nested: { $duro: "undefined" } };
      const handle = await duro.startWorkflow(wf, tricky);
      await handle.getResult();
      const other = await reader();
      expect(await other.getResult(handle.workflowId)).toEqual(tricky);
    });

    it("an own \"__proto__\" key (as JSON.parse makes) stays a key, in both formats, and sets no prototype", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("proto", async (x: unknown) => x);
      const portable = duro.registerWorkflow("protoPortable", async (x: unknown) => x, { serialization: "portable" });
      await duro.launch();
      const input = JSON.parse('{"__proto__": {"polluted": true}, "a": {"__proto__": 1}}');
      const handles = [await duro.startWorkflow(wf, input), await duro.startWorkflow(portable, input)];
      await Promise.all(handles.map((h) => h.getResult()));
      const other = await reader();
      for (const handle of handles) {
        const output = (await other.getResult(handle.workflowId)) as Record<string, unknown>;
        expect(Object.keys(output)).toEqual(["__proto__", "a"]);
        expect(Object.getPrototypeOf(output)).toBe(Object.prototype);
        expect(Object.getOwnPropertyDescriptor(output, "__proto__")!.value).toEqual({ polluted: true });
        expect(Object.keys(output.a as object)).toEqual(["__proto__"]);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }
    });

    it("messages and events carry default-serialized values", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("carrier", async () => {
        const message = await duro.recv<Map<string, Date>>("m", 10);
        await duro.setEvent("e", new Set([message!.get("d")!.getTime()]));
        return message;
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await duro.send(handle.workflowId, new Map([["d", new Date(5)]]), "m");
      const message = await handle.getResult();
      expect(message).toEqual(new Map([["d", new Date(5)]]));
      const other = await reader();
      expect(await other.getEvent(handle.workflowId, "e", 1)).toEqual(new Set([5]));
    });
  });

  describe("a value's format per call", () => {
    it("send, setEvent and writeStream store a value as asked by serialization, or by the reference's name serializationType", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("formats", async () => {
        const message = await duro.recv<{ n: number }>("m", 10);
        await duro.setEvent("a", 1, { serialization: "portable" });
        await duro.setEvent("b", 2, { serializationType: "portable" });
        await duro.setEvent("c", 3);
        await duro.writeStream("s", 4, { serializationType: "portable" });
        await duro.writeStream("s", 5);
        const error = await rejectionOf(duro.setEvent("d", 10n, { serializationType: "portable" }));
        expect(error).toBeInstanceOf(SerializationError); // portable is plain JSON: the option is honoured
        return message;
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ workflowId: "formats" }));
      await expect(duro.send("formats", 0, "m", { serialization: "portable", serializationType: "default" })).rejects.toThrow(/disagree/);
      await duro.send("formats", { n: 1 }, "m", { serializationType: "portable" });
      expect(await handle.getResult()).toEqual({ n: 1 });
      const formats = async (sql: string) => (await rawQuery(t.url, sql)).map((row) => row.serialization);
      expect(await formats("SELECT serialization FROM notifications")).toEqual(["portable"]);
      expect(await formats("SELECT serialization FROM workflow_events ORDER BY key")).toEqual(["portable", "portable", "default"]);
      expect(await formats("SELECT serialization FROM streams WHERE value IS NOT NULL ORDER BY \"offset\"")).toEqual(["portable", "default"]);
      const other = await reader();
      expect(await other.getAllEvents("formats")).toEqual({ a: 1, b: 2, c: 3 });
    });
  });

  describe("portable serialization", () => {
    it("a portable workflow stores its input and output as plain JSON", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("portable", async (x: { when: Date; tags: Set<string>; n: number }) => ({ when: x.when, tags: x.tags, n: x.n + 1, made: new Date(5) }), {
        serialization: "portable",
      });
      await duro.launch();
      const handle = await duro.startWorkflow(wf, { when: new Date(0), tags: new Set(["a"]), n: 1 });
      const here = await handle.getResult();
      const other = await reader();
      // What a program in another language sees: JSON. This process sees the same.
      const expected = { when: "1970-01-01T00:00:00.000Z", tags: ["a"], n: 2, made: "1970-01-01T00:00:00.005Z" };
      expect(await other.getResult(handle.workflowId)).toEqual(expected);
      expect(here).toEqual(expected);
      const [row] = await rawQuery(t.url, "SELECT inputs, output, serialization FROM workflow_status WHERE workflow_id = $1", [handle.workflowId]);
      expect(row.serialization).toBe("portable");
      expect(JSON.parse(row.output)).toEqual(expected);
      expect(JSON.parse(row.inputs)).toEqual({ positionalArgs: [{ when: "1970-01-01T00:00:00.000Z", tags: ["a"], n: 1 }], namedArgs: {} });
    });

    it(".with({ serialization: 'portable' }) makes one start portable", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("maybePortable", async (d: Date) => d);
      await duro.launch();
      const handle = await duro.startWorkflow(wf.with({ serialization: "portable" }), new Date(1000));
      await handle.getResult();
      const other = await reader();
      expect(await other.getResult(handle.workflowId)).toBe("1970-01-01T00:00:01.000Z");
      const [row] = await rawQuery(t.url, "SELECT serialization FROM workflow_status WHERE workflow_id = $1", [handle.workflowId]);
      expect(row.serialization).toBe("portable");
    });

    it("a portable workflow's error is stored as { name, message } and comes back with that name and message", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("portableError", async () => {
        const error = Object.assign(new Error("portable failure"), { orderId: "o-1", code: "card" });
        error.name = "PaymentDeclined";
        throw error;
      }, { serialization: "portable" });
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      const here = await rejectionOf(handle.getResult());
      const other = await reader();
      const error = await rejectionOf(other.getResult(handle.workflowId));
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe("PaymentDeclined");
      expect(error.message).toBe("portable failure");
      // This process gets what the others get: the fields portable JSON keeps (name, message, code), not the rest.
      expect([here.name, here.message, here.code, here.orderId]).toEqual(["PaymentDeclined", "portable failure", "card", undefined]);
      expect([error.code, error.orderId]).toEqual(["card", undefined]);
      const [row] = await rawQuery(t.url, "SELECT error FROM workflow_status WHERE workflow_id = $1", [handle.workflowId]);
      expect(JSON.parse(row.error)).toMatchObject({ name: "PaymentDeclined", message: "portable failure" });
    });

    it("values plain JSON cannot hold are refused at start with SerializationError", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("strict", async (x: unknown) => x, { serialization: "portable" });
      await duro.launch();
      await expect(duro.startWorkflow(wf, 10n)).rejects.toBeInstanceOf(SerializationError);
      await expect(duro.startWorkflow(wf, new Map([["a", 1]]))).rejects.toBeInstanceOf(SerializationError);
      // JSON.stringify would write these as something else: an index-keyed object, {}.
      for (const value of [new Uint8Array([1, 2]), Buffer.from("ab"), /a+/g, new Float64Array(2)]) {
        await expect(duro.startWorkflow(wf, { value })).rejects.toThrow(/base64/);
      }
      await expect(wf({ big: new Uint8Array(9 * 1024 * 1024) })).rejects.toBeInstanceOf(SerializationError);
      expect(await duro.listWorkflows()).toEqual([]);
    });
  });

  describe("values that cannot be stored", () => {
    it("an unserializable argument fails at start with SerializationError and nothing is written", async () => {
      const duro = t.duro();
      let runs = 0;
      const wf = duro.registerWorkflow("takesAnything", async (_x: unknown) => ++runs);
      await duro.launch();
      const circular: Record<string, unknown> = { a: 1 };
      circular.self = circular;
      await expect(duro.startWorkflow(wf, () => 1)).rejects.toBeInstanceOf(SerializationError);
      await expect(duro.startWorkflow(wf.with({ workflowId: "circ" }), circular)).rejects.toBeInstanceOf(SerializationError);
      await expect(duro.startWorkflow(wf, Symbol("s"))).rejects.toBeInstanceOf(SerializationError);
      await expect(wf(new WeakMap())).rejects.toBeInstanceOf(SerializationError);
      expect(await duro.listWorkflows()).toEqual([]);
      expect(await duro.getWorkflowStatus("circ")).toBeNull();
      expect(runs).toBe(0);
    });

    it("a small graph of shared references that would serialize to gigabytes is refused at the limit, before it is built", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("takesGraph", async (_x: unknown) => 1);
      const portable = duro.registerWorkflow("takesGraphPortable", async (_x: unknown) => 1, { serialization: "portable" });
      await duro.launch();
      let graph: object = { leaf: "x" };
      for (let i = 0; i < 40; i++) graph = { l: graph, r: graph }; // 41 objects, 2^40 leaves written out
      const started = Date.now();
      for (const target of [wf, portable]) {
        const error = await rejectionOf(duro.startWorkflow(target, graph));
        expect(error).toBeInstanceOf(SerializationError);
        expect(error.message).toMatch(/serializes to \d+ bytes or more; the limit is 10485760/);
      }
      expect(Date.now() - started).toBeLessThan(10_000);
      // Shared references under the limit are fine: each is written out where it appears.
      const shared = { n: 1 };
      const echo = duro.registerWorkflow("echoShared", async (x: unknown) => x);
      expect(await echo({ a: shared, b: shared })).toEqual({ a: { n: 1 }, b: { n: 1 } });
      expect((await duro.listWorkflows()).map((w) => w.workflowName)).toEqual(["echoShared"]);
    });

    it("a value nested deeper than the stack allows is refused with SerializationError saying so", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("takesDeep", async (_x: unknown) => 1);
      await duro.launch();
      let deep: unknown = 1;
      for (let i = 0; i < 100_000; i++) deep = [deep];
      const error = await rejectionOf(duro.startWorkflow(wf, deep));
      expect(error).toBeInstanceOf(SerializationError);
      expect(error.message).toMatch(/nested too deeply/);
      expect(await duro.listWorkflows()).toEqual([]);
    });

    it("a child started with an unserializable argument fails in the parent, which can catch it", async () => {
      const duro = t.duro();
      const child = duro.registerWorkflow("child", async (_x: unknown) => "child ran");
      const parent = duro.registerWorkflow("parent", async () => {
        try {
          await duro.startWorkflow(child, () => 1);
          return "started";
        } catch (error) {
          return error instanceof SerializationError ? "refused" : `other: ${error}`;
        }
      });
      await duro.launch();
      expect(await (await duro.startWorkflow(parent.with({ workflowId: "P" }))).getResult()).toBe("refused");
      expect(await duro.listWorkflows({ parentWorkflowId: "P" })).toEqual([]);
    });

    it("a step returning an unserializable value fails with SerializationError", async () => {
      const duro = t.duro();
      const step = duro.registerStep("returnsFunction", async () => () => 1);
      const wf = duro.registerWorkflow("wf", async () => {
        try {
          await step();
          return "stored";
        } catch (error) {
          return error instanceof SerializationError ? "refused" : `other: ${error}`;
        }
      });
      await duro.launch();
      expect(await (await duro.startWorkflow(wf)).getResult()).toBe("refused");
    });

    it("a workflow returning an unserializable value ends in ERROR with SerializationError", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("badOutput", async () => ({ fn: () => 1 }));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await expect(handle.getResult()).rejects.toBeInstanceOf(SerializationError);
      const other = await reader();
      expect((await other.getWorkflowStatus(handle.workflowId))!.status).toBe("ERROR");
      await expect(other.getResult(handle.workflowId)).rejects.toBeInstanceOf(SerializationError);
    });

    it("sending an unserializable message fails with SerializationError and delivers nothing", async () => {
      const duro = t.duro();
      const wf = duro.registerWorkflow("receiver", async () => duro.recv("m", 0.3));
      await duro.launch();
      const handle = await duro.startWorkflow(wf);
      await expect(duro.send(handle.workflowId, { f: () => 1 }, "m")).rejects.toBeInstanceOf(SerializationError);
      expect(await handle.getResult()).toBeNull();
    });
  });
});
