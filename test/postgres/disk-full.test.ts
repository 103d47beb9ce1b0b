/**
 * A server that runs out of disk (or memory) refuses writes with SQLSTATE class 53 until it has
 * room again. That is an outage of the database, not a failure of the workflow: the write is
 * retried, and past the retry window the run is interrupted and runs again from its checkpoints,
 * as after a lost connection. Before, the server's error reached the workflow as its own, and
 * workflows ended in ERROR for good.
 *
 * The full disk is made with a trigger that raises the server's disk-full error on insert.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DatabaseError, DuroError } from "../../src/index.js";
import { retry } from "../../src/storage/postgres/connection.js";
import { quietLogger, rawQuery, rejectionOf, sleep, useDuro, waitFor } from "../helpers.js";

afterEach(() => {
  retry.windowMs = 60_000;
});

describe("postgres: a full disk", () => {
  const t = useDuro("postgres");

  const fill = (table: string) =>
    rawQuery(
      t.url,
      `CREATE OR REPLACE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = '53100'; END $$;
       CREATE TRIGGER full_disk BEFORE INSERT ON ${table} FOR EACH ROW EXECUTE FUNCTION full_disk()`,
    );
  const free = (table: string) => rawQuery(t.url, `DROP TRIGGER full_disk ON ${table}`);

  /** A workflow of two steps; `bodies` counts each step's runs. */
  async function app() {
    const duro = t.duro({ logger: quietLogger });
    const bodies = { one: 0, two: 0 };
    const one = duro.registerStep("one", async () => ++bodies.one);
    const two = duro.registerStep("two", async () => ++bodies.two);
    const wf = duro.registerWorkflow("twoSteps", async () => (await one()) + (await two()));
    await duro.launch();
    return { duro, bodies, wf };
  }

  it("a step's record refused for a while is written once there is room: the workflow succeeds, its step ran once", async () => {
    const { duro, bodies, wf } = await app();
    await fill("operation_outputs");
    const handle = await duro.startWorkflow(wf);
    await waitFor(() => bodies.one === 1, 5000, "step one to run");
    await sleep(500); // its record is refused meanwhile
    await free("operation_outputs");
    expect(await handle.getResult()).toBe(2);
    expect(bodies).toEqual({ one: 1, two: 1 });
    expect((await handle.getStatus())!.status).toBe("SUCCESS");
  });

  it("refused past the retry window, the run is interrupted and runs again from its checkpoints once there is room: no ERROR", async () => {
    retry.windowMs = 300;
    const { duro, bodies, wf } = await app();
    await fill("operation_outputs");
    const handle = await duro.startWorkflow(wf);
    await waitFor(() => bodies.one >= 1, 5000, "step one to run");
    await sleep(1000); // well past the window
    expect((await handle.getStatus())!.status).toBe("PENDING");
    await free("operation_outputs");
    expect(await handle.getResult()).toBeGreaterThanOrEqual(2);
    expect((await handle.getStatus())!.status).toBe("SUCCESS");
  });

  it("a start refused past the retry window fails with duro's DatabaseError, saying what to do", async () => {
    retry.windowMs = 300;
    const { duro, wf } = await app();
    await fill("workflow_status");
    const error = await rejectionOf(duro.startWorkflow(wf));
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toBeInstanceOf(DuroError);
    expect((error as Error).message).toMatch(/SQLSTATE 53100.*Free disk space/);
    await free("workflow_status");
    expect(await (await duro.startWorkflow(wf)).getResult()).toBe(2);
  });
});
