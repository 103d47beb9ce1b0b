/** The error classes of SPEC.md: exported, part of one hierarchy, named after themselves. */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import * as duroApi from "../../src/index.js";
import {
  AwaitedWorkflowCancelledError, DuplicateWorkflowError, DuroError, InvalidArgumentError, MaxRecoveryAttemptsExceededError,
  MaxStepRetriesExceededError, NonDeterminismError, NotInWorkflowError, SerializationError, StreamTimeoutError, WorkflowConflictError,
  WorkflowNotFoundError,
} from "../../src/index.js";
import { backends, rawQuery, rejectionOf, useDuro, waitFor } from "../helpers.js";

const SPEC_ERRORS = [
  "WorkflowConflictError",
  "NonDeterminismError",
  "NotInWorkflowError",
  "WorkflowNotFoundError",
  "MaxStepRetriesExceededError",
  "AwaitedWorkflowCancelledError",
  "MaxRecoveryAttemptsExceededError",
  "DuplicateWorkflowError",
  "StreamTimeoutError",
  "SerializationError",
  "InvalidArgumentError",
] as const;

/** One instance of each, built through its public constructor. */
const samples: Record<(typeof SPEC_ERRORS)[number], Error> = {
  WorkflowConflictError: new WorkflowConflictError("id", "a", "b"),
  NonDeterminismError: new NonDeterminismError("id", 1, "recorded", "expected"),
  NotInWorkflowError: new NotInWorkflowError("recv"),
  WorkflowNotFoundError: new WorkflowNotFoundError("id"),
  MaxStepRetriesExceededError: new MaxStepRetriesExceededError("step", 2, [new Error("1"), new Error("2")]),
  AwaitedWorkflowCancelledError: new AwaitedWorkflowCancelledError("id"),
  MaxRecoveryAttemptsExceededError: new MaxRecoveryAttemptsExceededError("id", 3),
  DuplicateWorkflowError: new DuplicateWorkflowError("queue", "dedup"),
  StreamTimeoutError: new StreamTimeoutError("id", "key", 1),
  SerializationError: new SerializationError("cannot serialize"),
  InvalidArgumentError: new InvalidArgumentError("bad argument"),
};

describe.each(backends)("%s", (backend) => {
  const t = useDuro(backend);

  describe("error classes", () => {
    it("DuroError is exported and is an Error", () => {
      expect(typeof duroApi.DuroError).toBe("function");
      expect(new DuroError("x")).toBeInstanceOf(Error);
      expect(new DuroError("x").name).toBe("DuroError");
    });

    it.each(SPEC_ERRORS)("%s is exported, is a DuroError and an Error, and is named after its class", (name) => {
      const exported = (duroApi as Record<string, unknown>)[name];
      expect(typeof exported).toBe("function");
      const error = samples[name];
      expect(error).toBeInstanceOf(exported as new () => Error);
      expect(error).toBeInstanceOf(DuroError);
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe(name);
      expect((exported as { name: string }).name).toBe(name);
      expect(error.message.length).toBeGreaterThan(0);
      expect(typeof error.stack).toBe("string");
    });

    it("MaxStepRetriesExceededError carries one error per attempt", () => {
      const attempts = [new Error("first"), new Error("second"), new Error("third")];
      const error = new MaxStepRetriesExceededError("step", 3, attempts);
      expect(error.errors).toEqual(attempts);
    });
  });

  describe("errors thrown by duro", () => {
    it("are DuroErrors of the documented class, with a message that names the problem", async () => {
      const duro = t.duro();
      const one = duro.registerWorkflow("one", async () => 1);
      const two = duro.registerWorkflow("two", async () => 2);
      const takes = duro.registerWorkflow("takes", async (_x: unknown) => 3);
      await duro.launch();
      await duro.startWorkflow(one.with({ workflowId: "id-1" }));
      const caught = await Promise.all([
        rejectionOf(duro.startWorkflow(two.with({ workflowId: "id-1" }))),
        rejectionOf(duro.retrieveWorkflow("missing-id")),
        rejectionOf(duro.recv("t", 0.1)),
        rejectionOf(duro.waitFirst([])),
        rejectionOf(duro.startWorkflow(takes, () => 1)),
      ]);
      const [conflict, notFound, notInWorkflow, invalid, serialization] = caught;
      expect(conflict).toBeInstanceOf(WorkflowConflictError);
      expect(notFound).toBeInstanceOf(WorkflowNotFoundError);
      expect(notFound.message).toContain("missing-id");
      expect(notInWorkflow).toBeInstanceOf(NotInWorkflowError);
      expect(notInWorkflow.message).toContain("recv");
      expect(invalid).toBeInstanceOf(InvalidArgumentError);
      expect(serialization).toBeInstanceOf(SerializationError);
      for (const error of caught) {
        expect(error).toBeInstanceOf(DuroError);
        expect(error.name).toBe(error.constructor.name);
      }
    });

    it("keep their class when they are a workflow's recorded error, read back by another instance", async () => {
      const a = t.duro({ executorId: "a" });
      const wf = a.registerWorkflow("rethrows", async () => {
        await a.recv("t", 0.01);
        throw new NonDeterminismError("w", 1, "x", "y");
      });
      await a.launch();
      const handle = await a.startWorkflow(wf);
      await handle.getResult().catch(() => undefined);
      const b = t.duro({ executorId: "b" });
      await b.launch();
      const error = await rejectionOf(b.getResult(handle.workflowId));
      expect(error).toBeInstanceOf(NonDeterminismError);
      expect(error).toBeInstanceOf(DuroError);
      expect(error.name).toBe("NonDeterminismError");
      expect(error.functionId).toBe(1);
    });

    it("an application's error classes named like duro's (pg's DatabaseError) stay apart: neither comes back as the other, here or in another process", async () => {
      class DatabaseError extends Error {
        constructor(readonly code: string) {
          super('relation "nope" does not exist');
          this.name = "DatabaseError";
        }
      }
      class InvalidArgumentError extends Error {}
      const a = t.duro();
      const throwing = (make: () => unknown) => a.registerWorkflow(`throws-${Math.random()}`, async () => {
        throw make();
      });
      const cases = {
        "app-db": throwing(() => new DatabaseError("42P01")),
        "app-arg": throwing(() => new InvalidArgumentError("theirs")),
        "duro-arg": throwing(() => new duroApi.InvalidArgumentError("ours")),
      };
      // Stored in part (a field that cannot be), and in the portable format: still not duro's.
      const unstorable = a.registerStep("unstorable", async () => {
        throw Object.assign(new DatabaseError("42P01"), { retry: () => undefined });
      });
      const partly = a.registerWorkflow("partly", async () => unstorable());
      const portable = a.registerWorkflow("portable", async () => {
        throw new DatabaseError("42P01");
      }, { serialization: "portable" });
      await a.launch();
      for (const [id, wf] of Object.entries(cases)) await rejectionOf((await a.startWorkflow(wf.with({ workflowId: id }))).getResult());
      expect(await rejectionOf((await a.startWorkflow(partly.with({ workflowId: "partly" }))).getResult())).toBeInstanceOf(DatabaseError);
      expect((await a.getWorkflowStatus("partly"))!.status).toBe("ERROR"); // a failure, not an interruption
      await rejectionOf((await a.startWorkflow(portable.with({ workflowId: "portable" }))).getResult());
      const b = t.duro({ executorId: "b" });
      await b.launch();
      const [appDb, appArg, duroArg] = await Promise.all(Object.keys(cases).map((id) => rejectionOf(b.getResult(id))));
      expect(appDb).toBeInstanceOf(DatabaseError);
      expect(appDb).not.toBeInstanceOf(duroApi.DatabaseError);
      expect(appArg).toBeInstanceOf(InvalidArgumentError);
      expect(appArg).not.toBeInstanceOf(duroApi.InvalidArgumentError);
      expect(duroArg).toBeInstanceOf(duroApi.InvalidArgumentError);
      expect(duroArg).not.toBeInstanceOf(InvalidArgumentError);
      // A process that never held the application's class: an Error of that name, not duro's class.
      const script = `import { DuroClient, DatabaseError, InvalidArgumentError } from ${JSON.stringify(resolve("dist/index.js"))};
const client = new DuroClient({ databaseUrl: process.env.URL });
const [db, arg, partly, portable] = await Promise.all(["app-db", "duro-arg", "partly", "portable"].map((id) => client.getResult(id).catch((e) => e)));
console.log(JSON.stringify([db instanceof DatabaseError, db.name, db.code, arg instanceof InvalidArgumentError, partly instanceof DatabaseError, portable instanceof DatabaseError, portable.name]));
await client.close();`;
      const { stdout } = await promisify(execFile)(process.execPath, ["--no-warnings", "--input-type=module", "-e", script], { encoding: "utf8", env: { ...process.env, URL: t.url } });
      expect(JSON.parse(stdout)).toEqual([false, "DatabaseError", "42P01", true, false, false, "DatabaseError"]);
    });

    /** Workflow `id` on `a` calls `step`, which fails; another instance, `b`, reads back its error. */
    async function failedAndReadElsewhere(a: ReturnType<typeof t.duro>, id: string, step: () => Promise<unknown>) {
      const wf = a.registerWorkflow(id, async () => step());
      await a.launch();
      await rejectionOf((await a.startWorkflow(wf.with({ workflowId: id }))).getResult());
      const b = t.duro({ executorId: "b" });
      await b.launch();
      return { b, error: await rejectionOf(b.getResult(id)) };
    }

    it("a failed step's attempts keep their errors when one of them cannot be stored whole: each in part (name, message, what fields can be)", async () => {
      const a = t.duro();
      let attempt = 0;
      const flaky = a.registerStep("flaky", async () => {
        throw Object.assign(new Error(`attempt ${++attempt}`), { attempt, retry: () => undefined });
      }, { retriesAllowed: true, maxAttempts: 2, intervalSeconds: 0 });
      const { error } = await failedAndReadElsewhere(a, "retries", flaky);
      expect(error).toBeInstanceOf(MaxStepRetriesExceededError);
      expect([error.stepName, error.maxAttempts]).toEqual(["flaky", 2]);
      expect(error.errors.map((e: Error & { attempt: number; retry?: unknown }) => [e.message, e.attempt, e.retry])).toEqual([["attempt 1", 1, undefined], ["attempt 2", 2, undefined]]);
      expect(error.cause.message).toBe("attempt 2");
    });

    it("a step's DOMException (what fetch's aborts and AbortSignal.timeout throw) reads back as an Error of its name: the workflow's result and steps stay readable", async () => {
      const a = t.duro();
      const aborted = a.registerStep("aborted", async () => {
        throw new DOMException("took too long", "TimeoutError");
      });
      const { b, error } = await failedAndReadElsewhere(a, "fetches", aborted);
      expect([error.name, error.message]).toEqual(["TimeoutError", "took too long"]);
      expect((await b.listWorkflowSteps("fetches"))[0].error?.name).toBe("TimeoutError");
    });

    it("a stored error of a class this process does not know comes back as an Error with its name and fields, and a warning says to register the class", async () => {
      class Declined extends Error {
        constructor(readonly code: string) {
          super("card declined");
          this.name = "Declined";
        }
      }
      const a = t.duro();
      const wf = a.registerWorkflow("declines", async () => {
        throw new Declined("E42");
      });
      await a.launch();
      await rejectionOf((await a.startWorkflow(wf.with({ workflowId: "dec" }))).getResult());
      // As another process, which never held the class, reads it: the record names a class unknown here.
      const unknownName = `Declined${backend}Elsewhere`;
      const table = backend === "sqlite" ? "workflow_status" : `"${new URL(t.url).searchParams.get("schema")}".workflow_status`;
      await rawQuery(t.url, `UPDATE ${table} SET error = REPLACE(error, '"class":"Declined"', '"class":"${unknownName}"') WHERE workflow_id = 'dec'`);
      const warnings: string[] = [];
      const onWarning = (warning: Error) => void warnings.push(warning.message);
      const printers = process.listeners("warning"); // Node's own, which would print it in the test run
      process.removeAllListeners("warning");
      process.on("warning", onWarning);
      try {
        const b = t.duro({ executorId: "b" });
        await b.launch();
        for (const read of [() => b.getResult("dec"), () => b.getResult("dec")]) {
          const error = await rejectionOf(read());
          expect(error).not.toBeInstanceOf(Declined);
          expect(error).toBeInstanceOf(Error);
          expect([error.name, error.message, error.code]).toEqual(["Declined", "card declined", "E42"]);
        }
        await waitFor(() => warnings.some((w) => w.includes(unknownName)), 5_000, "the warning");
        expect(warnings.filter((w) => w.includes(unknownName))).toEqual([
          `duro: a stored error of class ${unknownName} comes back as an Error (its name, message and fields kept): this process does not know that class. ` +
            `Call registerErrorClass(${unknownName}) at start-up, so that instanceof checks hold, in workflow code that replays it too.`,
        ]);
      } finally {
        process.off("warning", onWarning);
        for (const printer of printers) process.on("warning", printer);
      }
    });
  });

  describe("values thrown that are not Errors", () => {
    it("reach getResult callers as themselves, in this process and another, and a step replays them as they were", async () => {
      const a = t.duro({ executorId: "a" });
      let runs = 0;
      const picky = a.registerStep("picky", async () => {
        runs++;
        throw { code: 42, reason: "declined" };
      });
      const wf = a.registerWorkflow("throwsValues", async () => {
        const caught = await picky().catch((thrown: unknown) => thrown);
        await a.setEvent("caught", caught);
        throw "out of stock";
      });
      await a.launch();
      const handle = await a.startWorkflow(wf.with({ workflowId: "tv" }));
      expect(await rejectionOf(handle.getResult())).toBe("out of stock");
      expect(await a.getEvent("tv", "caught")).toEqual({ code: 42, reason: "declined" });
      const b = t.duro({ executorId: "b" });
      await b.launch();
      expect(await rejectionOf(b.getResult("tv"))).toBe("out of stock");
      // Listings show them as Errors.
      expect((await b.getWorkflowStatus("tv"))!.error).toBeInstanceOf(Error);
      expect((await b.listWorkflowSteps("tv"))[0].error).toBeInstanceOf(Error);
      // A fork past the step replays the recorded object, not an Error made of it.
      const fork = await a.forkWorkflow("tv", 2, { newWorkflowId: "tv-fork" });
      expect(await rejectionOf(fork.getResult())).toBe("out of stock");
      expect(await a.getEvent("tv-fork", "caught")).toEqual({ code: 42, reason: "declined" });
      expect(runs).toBe(1);
    });

    it("a thrown value that cannot be stored as it is reaches callers here as it does elsewhere: as recorded", async () => {
      const a = t.duro({ executorId: "a" });
      const circular: Record<string, unknown> = { a: 1 };
      circular.self = circular;
      const values: Record<string, unknown> = { symbol: Symbol("s"), circular, withFunction: Object.assign(new TypeError("ef"), { retry: () => 1 }) };
      const wf = a.registerWorkflow("throwsOdd", async (key: string) => {
        throw values[key];
      });
      // A step's error comes back from the record on the first run too, so the workflow can return it.
      const failing = a.registerStep("failing", async () => {
        throw values.withFunction;
      });
      const catcher = a.registerWorkflow("catcher", async () => {
        const caught = (await failing().catch((error: unknown) => error)) as Error;
        return { caught, retry: typeof (caught as unknown as { retry?: unknown }).retry };
      });
      await a.launch();
      const here: Record<string, unknown> = {};
      for (const key of Object.keys(values)) here[key] = await rejectionOf((await a.startWorkflow(wf.with({ workflowId: key }), key)).getResult());
      const caughtHere = await (await a.startWorkflow(catcher.with({ workflowId: "catcher" }))).getResult();
      const b = t.duro({ executorId: "b" });
      await b.launch();
      for (const key of Object.keys(values)) expect(await rejectionOf(b.getResult(key))).toEqual(here[key]);
      expect(here.symbol).toEqual(new Error("Symbol(s)"));
      expect(here.circular).toEqual(new Error("[object Object]"));
      expect(here.withFunction).toBeInstanceOf(TypeError);
      expect((here.withFunction as Error).message).toBe("ef");
      expect(caughtHere.caught).toBeInstanceOf(TypeError);
      expect([caughtHere.caught.message, caughtHere.retry]).toEqual(["ef", "undefined"]);
      expect(await b.getResult("catcher")).toEqual(caughtHere);
    });

    it.each(["default", "portable"] as const)("a thrown value that throws when looked at ends its workflow in ERROR (%s), and the executor goes on", async (serialization) => {
      const duro = t.duro();
      const hostile: Record<string, () => unknown> = {
        noPrototype: () => Object.assign(Object.create(null), { a: 1 }),
        throwingToString: () => ({ toString: () => { throw new Error("no toString"); } }),
        revokedProxy: () => {
          const { proxy, revoke } = Proxy.revocable({}, {});
          revoke();
          return proxy;
        },
      };
      const step = duro.registerStep("hostileStep", async (key: string) => {
        throw hostile[key]();
      });
      const wf = duro.registerWorkflow("hostile", async (key: string, inStep: boolean) => {
        if (inStep) await step(key);
        throw hostile[key]();
      });
      const fine = duro.registerWorkflow("fine", async () => "still working");
      await duro.launch();
      for (const key of Object.keys(hostile)) {
        for (const inStep of [false, true]) {
          const handle = await duro.startWorkflow(wf.with({ workflowId: `${key}-${inStep}`, serialization }), key, inStep);
          const thrown = await rejectionOf(handle.getResult());
          if (key === "revokedProxy") expect(String(thrown)).toMatch(/^TypeError: A value was thrown that cannot be inspected/);
          // "default" keeps an object without a prototype as an object.
          else if (key === "noPrototype" && serialization === "default") expect(thrown).toEqual({ a: 1 });
          else expect(thrown).toBeInstanceOf(Error);
          expect((await duro.getWorkflowStatus(handle.workflowId))!.status).toBe("ERROR");
        }
      }
      expect(await (await duro.startWorkflow(fine)).getResult()).toBe("still working");
    });
  });
});
