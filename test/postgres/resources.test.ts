/**
 * Connections are resources: shutdown() gives every one back, and a bad database URL or an
 * unreachable server fails with a clear, typed error in the expected time (never the password).
 * Connection counting uses a database of its own on the shared server, so other suites'
 * connections (all named 'duro') never enter the count.
 */
import { randomUUID } from "node:crypto";
import { createServer, type AddressInfo, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AwaitedWorkflowCancelledError, DatabaseError, Duro, DuroClient, DuroError, InvalidArgumentError } from "../../src/index.js";
import { POSTGRES_URL, quietLogger, sleep, waitFor } from "../helpers.js";
import { retry } from "../../src/storage/postgres/connection.js";
import { freePort } from "./cluster.js";

const database = `duro_res_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const url = (() => {
  const u = new URL(POSTGRES_URL);
  u.pathname = `/${database}`;
  return u.toString();
})();

async function admin<R extends Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: POSTGRES_URL, application_name: "duro-test-admin" });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as R[];
  } finally {
    await client.end();
  }
}

/** Connections to this test's own database (duro's pools and LISTEN connections). */
const connections = async () => Number((await admin<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1`, [database]))[0].n);

beforeAll(async () => {
  await admin(`CREATE DATABASE "${database}"`);
});
afterAll(async () => {
  await admin(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
});

/** The error `fn` fails with (a constructor or a promise), and how long it took. */
async function failure(fn: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const t0 = Date.now();
  try {
    await fn();
  } catch (error) {
    return { error, ms: Date.now() - t0 };
  }
  throw new Error("expected a failure");
}

describe("clean shutdown", () => {
  it("shutdown() releases every connection: pg_stat_activity returns to its starting count", async () => {
    const before = await connections();
    expect(before).toBe(0);

    const duro = new Duro({ databaseUrl: url, executorId: "res-a", poolSize: 4, logger: quietLogger });
    const step = duro.registerStep("step", async (x: number) => x + 1);
    const work = duro.registerWorkflow("work", async (x: number) => step(await step(x)));
    const waiter = duro.registerWorkflow("waiter", async () => duro.recv("never", 600));
    await duro.launch();
    const client = new DuroClient({ databaseUrl: url, poolSize: 2, logger: quietLogger });

    expect(await Promise.all(Array.from({ length: 40 }, (_, i) => work(i)))).toEqual(Array.from({ length: 40 }, (_, i) => i + 2));
    // Still busy at shutdown: a workflow waiting in recv, and the client waiting for its result (LISTEN).
    const waiting = await duro.startWorkflow(waiter);
    const clientWait = client.getResult(waiting.workflowId).catch((error: unknown) => error);
    expect(await client.getResult((await duro.startWorkflow(work, 1)).workflowId)).toBe(3);

    const during = await connections();
    // At most the pools plus one LISTEN connection each.
    expect(during).toBeGreaterThan(before);
    expect(during).toBeLessThanOrEqual(4 + 1 + 2 + 1);

    await duro.shutdown();
    await client.close();
    // The client's pending wait ends with an error rather than hanging.
    expect(await clientWait).toBeInstanceOf(DuroError);
    // A backend leaves pg_stat_activity shortly after its client said goodbye.
    await waitFor(async () => (await connections()) === before, 10_000, `connections back to ${before}`);
    console.log(`connections: before ${before}, during ${during}, after shutdown ${await connections()}`);
  });

  it("a client that only enqueues holds one connection; its first wait adds the LISTEN one", async () => {
    const setup = new Duro({ databaseUrl: url, executorId: "res-c", logger: quietLogger });
    await setup.launch(); // migrates
    await setup.shutdown();
    await waitFor(async () => (await connections()) === 0, 10_000, "no connections");
    const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
    try {
      for (let i = 0; i < 20; i++) await client.enqueue({ workflowName: "nobody-runs-this", queueName: "q" }, i);
      expect(await connections()).toBe(1);
      const handle = await client.enqueue({ workflowName: "nobody-runs-this", queueName: "q" }, "wait for me");
      const wait = client.getResult(handle.workflowId).catch((error: unknown) => error);
      await waitFor(async () => (await connections()) === 2, 10_000, "the LISTEN connection");
      await client.cancelWorkflow(handle.workflowId);
      expect(await wait).toBeInstanceOf(AwaitedWorkflowCancelledError);
    } finally {
      await client.close();
    }
  });

  it("a launch that failed, and a shutdown right after launch, leave no connection behind", async () => {
    const before = await connections();
    const quick = new Duro({ databaseUrl: url, executorId: "res-b", logger: quietLogger });
    quick.registerWorkflow("noop", async () => 1);
    await quick.launch();
    await quick.shutdown();
    await waitFor(async () => (await connections()) === before, 10_000, `connections back to ${before}`);
  });
});

describe("bad input", () => {
  it.each(["postgres://:::", "postgres://user@/db", "postgresql://host:notaport/db"])(
    "a malformed URL (%s) fails at once with a typed error",
    async (bad) => {
      const { error, ms } = await failure(async () => {
        const duro = new Duro({ databaseUrl: bad, logger: quietLogger });
        try {
          await duro.launch();
        } finally {
          await duro.shutdown();
        }
      });
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect(error).toBeInstanceOf(DuroError);
      expect(ms).toBeLessThan(1000);
    },
  );

  it("a DuroClient with a malformed URL fails at its first call with the same typed error", async () => {
    const client = new DuroClient({ databaseUrl: "postgres://:::", logger: quietLogger });
    const { error, ms } = await failure(() => client.listWorkflows());
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect(ms).toBeLessThan(1000);
    await client.close();
  });

  it("a port nobody listens on fails with a DatabaseError naming host:port (not the password) after about connectTimeoutSeconds", async () => {
    const port = await freePort();
    const password = "hunter2-Secret";
    const duro = new Duro({ databaseUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, connectTimeoutSeconds: 2, logger: quietLogger });
    const { error, ms } = await failure(() => duro.launch());
    await duro.shutdown();
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toBeInstanceOf(DuroError);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    expect((error as Error).message).not.toContain(password);
    expect(String((error as Error).stack)).not.toContain(password);
    // It retried for about the timeout: neither at once nor much longer.
    expect(ms).toBeGreaterThanOrEqual(1000);
    expect(ms).toBeLessThan(2000 + 5000);
  });

  it("shutdown() cuts short a launch that is still retrying its first connection", async () => {
    const port = await freePort();
    const duro = new Duro({ databaseUrl: `postgres://postgres@127.0.0.1:${port}/postgres`, connectTimeoutSeconds: 30, logger: quietLogger });
    const launched = duro.launch();
    await sleep(500);
    const start = performance.now();
    await duro.shutdown();
    await launched; // nothing was launched, and nothing is left to fail
    expect(performance.now() - start).toBeLessThan(5000); // not the 30 s of connectTimeoutSeconds
    await expect(duro.launch()).rejects.toThrow(/create a new one/);
  });

  it("a server that asks for a password the URL lacks: a DatabaseError at once, and no socket left open", async () => {
    // A stand-in server that asks for SCRAM authentication, which pg fails on its own side
    // (no password to answer with) and used to leave its socket open, keeping the process alive.
    const sockets: Socket[] = [];
    const closed: Promise<void>[] = [];
    const server = createServer((socket) => {
      sockets.push(socket);
      closed.push(new Promise((resolve) => socket.on("close", () => resolve())));
      socket.on("error", () => {});
      let replies = 0;
      socket.on("data", () => {
        const mechanisms = Buffer.from("SCRAM-SHA-256\0\0");
        const [code, body] = replies++ === 0 ? [10, mechanisms] : [11, Buffer.from("r=nonce,s=c2FsdA==,i=4096")];
        const header = Buffer.alloc(9);
        header.write("R", 0);
        header.writeInt32BE(8 + body.length, 1);
        header.writeInt32BE(code, 5);
        socket.write(Buffer.concat([header, body]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const databaseUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
      const duro = new Duro({ databaseUrl, connectTimeoutSeconds: 5, logger: quietLogger });
      const launched = await failure(() => duro.launch());
      await duro.shutdown();
      const client = new DuroClient({ databaseUrl, connectTimeoutSeconds: 5, logger: quietLogger });
      const listed = await failure(() => client.listWorkflows());
      await client.close();
      for (const { error, ms } of [launched, listed]) {
        expect(error).toBeInstanceOf(DatabaseError);
        expect((error as Error).message).toContain(`127.0.0.1:${port}`);
        expect((error as Error).message).toContain("The server asks for a password");
        expect(ms).toBeLessThan(3000);
      }
      expect(sockets.length).toBeGreaterThanOrEqual(2);
      await Promise.race([Promise.all(closed), sleep(5000).then(() => Promise.reject(new Error("a socket was left open")))]);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });

  it("a database that does not exist fails at once (not retried) with a DatabaseError naming it", async () => {
    const u = new URL(POSTGRES_URL);
    u.pathname = "/no_such_database_for_duro";
    u.password = "pw-Not-In-Messages";
    const duro = new Duro({ databaseUrl: u.toString(), connectTimeoutSeconds: 20, logger: quietLogger });
    const { error, ms } = await failure(() => duro.launch());
    await duro.shutdown();
    expect(error).toBeInstanceOf(DatabaseError);
    expect((error as Error).message).toContain("no_such_database_for_duro");
    expect((error as Error).message).toContain(`${u.hostname}:${u.port || 5432}`);
    expect((error as Error).message).not.toContain("pw-Not-In-Messages");
    expect(ms).toBeLessThan(5000);
  });
});

describe("the LISTEN connection", () => {
  it("refused for want of connections: said once it lasts, with what to raise, and said again when it opens", async () => {
    const role = `duro_small_${randomUUID().replaceAll("-", "").slice(0, 8)}`;
    await admin(`CREATE ROLE "${role}" LOGIN CONNECTION LIMIT 1`);
    await admin(`GRANT CREATE ON DATABASE "${database}" TO "${role}"`);
    const saved = retry.listenWarnMs;
    retry.listenWarnMs = 300;
    const lines: string[] = [];
    const logger = { ...quietLogger, warn: (m: string) => void lines.push(`warn ${m}`), info: (m: string) => void lines.push(`info ${m}`) };
    const u = new URL(url);
    u.username = role;
    u.searchParams.set("schema", role);
    const duro = new Duro({ databaseUrl: u.toString(), poolSize: 1, logger });
    const wf = duro.registerWorkflow("wf", async () => duro.recv("t", 30));
    try {
      await duro.launch();
      const handle = await duro.startWorkflow(wf); // its wait makes the executor listen (or try to)
      await waitFor(async () => lines.some((l) => l.includes("(LISTEN) has been down")), 10_000, "the warning");
      const warnings = lines.filter((l) => l.startsWith("warn"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("too many connections for role");
      expect(warnings[0]).toContain("raise max_connections or the role's CONNECTION LIMIT");
      await admin(`ALTER ROLE "${role}" CONNECTION LIMIT 5`);
      await waitFor(async () => lines.some((l) => l.includes("(LISTEN) is open again")), 15_000, "the connection to open");
      const client = new DuroClient({ databaseUrl: `${url}?schema=${role}`, logger: quietLogger });
      await client.send(handle.workflowId, "heard", "t");
      await client.close();
      expect(await handle.getResult()).toBe("heard");
      expect(lines.filter((l) => l.startsWith("warn"))).toHaveLength(1);
    } finally {
      retry.listenWarnMs = saved;
      await duro.shutdown();
      const owner = new pg.Client({ connectionString: url });
      await owner.connect();
      await owner.query(`DROP OWNED BY "${role}" CASCADE`).finally(() => owner.end());
      await admin(`DROP ROLE "${role}"`);
    }
  });
});
