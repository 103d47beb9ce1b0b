/**
 * Connection handling for the PostgreSQL backend: the URL, the pool, retrying through
 * connection loss, and the LISTEN connection that carries other processes' wake keys.
 *
 * Retrying a whole operation after a lost connection is safe because every write is
 * idempotent (see storage/store.ts), including when a COMMIT's fate is unknown.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { DatabaseError, InvalidArgumentError } from "../../errors.js";
import type { StoreOptions } from "../open.js";
import { splitWakeKeys } from "../store.js";

/**
 * How long an operation keeps retrying through connection loss, and how long one attempt may
 * wait for its answer before its connection is presumed dead (a link that went silent without
 * a reset would otherwise hold it for TCP's own timeout, a quarter of an hour). The LISTEN
 * connection, which sends nothing of its own, is pinged every `listenPingMs` and replaced when a
 * ping is still unanswered at the next one. Settable for tests.
 */
export const retry = { windowMs: 60_000, stuckMs: 60_000, listenPingMs: 30_000, listenWarnMs: 10_000 };

export const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

const parseInt8 = (text: string) => parseInt(text, 10);
// Per-pool, so the application's own use of pg keeps its global parsers.
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === 20 ? parseInt8 : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

export function isTransient(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === "string") {
    // 25P03 and 57P05: the server ended a session that idled (in a transaction) past its timeout,
    // as it does to a process that was frozen or blocked; the transaction never committed.
    if (code.startsWith("08") || ["57P01", "57P02", "57P03", "57P05", "25P03", "40001", "40P01"].includes(code)) return true;
    // The server ran out of something (disk, memory, connections) or its storage failed: the
    // statement did nothing, and may succeed once that passes, as after an outage.
    if (outOfResources(code)) return true;
    if (["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"].includes(code)) return true;
  }
  return typeof message === "string" &&
    /Connection terminated|connection error|timeout exceeded when trying to connect|Connection ended|not queryable/i.test(message);
}

/** SQLSTATE classes 53 (insufficient resources: disk full, out of memory, too many connections) and 58 (I/O and system errors). */
const outOfResources = (code: unknown) => typeof code === "string" && (code.startsWith("53") || code.startsWith("58"));

/**
 * A statement the server gave up on (its `statement_timeout`, a cancel request, its
 * `lock_timeout`): it did nothing, and may pass when run again, as after a flicker.
 */
const gaveUp = (code: unknown) => code === "57014" || code === "55P03";

/**
 * What the server refused for a reason of its own, not of the write's values or rows (classes
 * 22, 23 and 54 among others, which fail only the write that carried them): a role without a
 * right (class 42), a read-only database (25), a database, schema or table gone (3D, 3F, 42), a
 * server shutting down or an administrator's cancel (57), an internal error (XX). It is the
 * database's failure, as an outage is, so that a workflow that met it is interrupted (and runs
 * again later), not failed.
 */
const SERVERS_OWN = /^(0A|25|28|3D|3F|42|55|57|XX)/;

function refusal(error: unknown, where: string): unknown {
  if (!(error instanceof pg.DatabaseError) || !SERVERS_OWN.test(error.code ?? "")) return error;
  return new DatabaseError(`PostgreSQL at ${where} refused an operation: ${refusedFor(error)}`, { cause: error });
}

/** The server's reason for a refusal, with its SQLSTATE and what to do where that is known. */
export function refusedFor(error: pg.DatabaseError): string {
  const hint = error.code === "42501"
    ? " Grant duro's role the rights the README lists (PostgreSQL roles, settings and URLs)."
    : error.code === "25006"
    ? " The database is read-only (a replica, or default_transaction_read_only): point databaseUrl at the primary."
    : "";
  return `${error.message} (SQLSTATE ${error.code}).${hint}`;
}

const BACKOFF_CAP_MS = 2000;
/** 100 ms doubling to 2 s, with jitter so a crowd of processes does not retry in step. */
export const backoff = (attempt: number) => Math.min(BACKOFF_CAP_MS, 100 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
/**
 * The longest a retrying operation may sleep before its next try (the cap, plus jitter), plus time
 * for that try to connect and write on a busy machine: once the database is back, an executor
 * beats again within this.
 */
export const RECONNECT_SLACK_MS = BACKOFF_CAP_MS * 1.2 + 600;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Closes a client's socket at once: its query in flight, if any, fails as on a lost connection. */
const drop = (client: pg.Client) => (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
/**
 * pg's client, but one whose failed connect closes its socket: pg leaves it open when the failure
 * is its own (a password the server asks for and the URL lacks), which keeps the process alive.
 */
class Client extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    // From the start: the pool listens only once its connect callback runs, a tick after the
    // session opens, and a server shutting down can end the session in that tick (an `error`
    // event nobody listened to would crash the process). Queries still get their errors.
    this.on("error", () => {});
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ((error: Error) => void) | ((error: null, client: pg.Client) => void)): void;
  override connect(callback?: ((error: Error) => void) | ((error: null, client: pg.Client) => void)): Promise<pg.Client> | void {
    const connected = super.connect().catch((error: unknown) => {
      drop(this);
      throw error;
    });
    if (!callback) return connected;
    const done = callback as (error: Error | null, client?: pg.Client) => void;
    connected.then((client) => done(null, client), (error: Error) => done(error));
  }
}
/** How long shutdown waits for connections to close politely before dropping them. */
const CLOSE_MS = 2000;
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

export class PgConnection {
  readonly pool: pg.Pool;
  /** The quoted schema name, to prefix table names with. */
  readonly schema: string;
  readonly schemaName: string;
  /** `host:port/database`, for messages: never the password. */
  readonly where: string;
  readonly channel: string;
  private readonly clientConfig: pg.ClientConfig;
  private closed = false;
  private listeners: ((keys: string[] | null) => void)[] = [];
  private listenClient?: pg.Client;
  /** Backend PIDs of our pooled connections: notifications they sent are our own. */
  private readonly ownBackends = new Set<number>();
  /** Every pooled connection, to drop those that do not close at shutdown. */
  private readonly clients = new Set<pg.Client>();
  private listenTimer?: NodeJS.Timeout;
  private listenPing?: NodeJS.Timeout;
  private listenAttempt = 0;
  /** Since when the LISTEN connection has been down (undefined: up), and whether that was told. */
  private listenDownSince: number | undefined;
  private listenDownTold = false;
  private troubleListeners: (() => void)[] = [];

  constructor(
    url: string,
    private readonly options: StoreOptions,
  ) {
    const parsed = new URL(url);
    this.schemaName = parsed.searchParams.get("schema") || "duro";
    // PostgreSQL cuts longer identifiers: two schema names alike in their first 63 bytes would share one.
    if (Buffer.byteLength(this.schemaName) > 63) {
      throw new InvalidArgumentError(
        `The schema in databaseUrl (?schema=) is ${Buffer.byteLength(this.schemaName)} bytes; PostgreSQL keeps names of at most 63 (a longer one is cut, so two such names could share one schema): choose a shorter one.`,
      );
    }
    if (parsed.searchParams.has("schema")) {
      parsed.searchParams.delete("schema");
      url = parsed.toString();
    }
    this.schema = quoteIdent(this.schemaName);
    const host = parsed.hostname || parsed.searchParams.get("host") || "localhost";
    this.where = `${host}:${parsed.port || 5432}/${decodeURIComponent(parsed.pathname.slice(1)) || parsed.username || "postgres"}`;
    // Channel names are identifiers of at most 63 bytes.
    const channel = `duro_${this.schemaName}`;
    this.channel = Buffer.byteLength(channel) <= 63 ? channel : `duro_${createHash("sha1").update(this.schemaName).digest("hex")}`;
    this.clientConfig = {
      connectionString: url,
      types,
      // Notice a peer that vanished without a FIN (it would hang a query, or silence LISTEN).
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: "duro",
      connectionTimeoutMillis: Math.min(options.connectTimeoutSeconds ?? 30, 10) * 1000,
    };
    const idleInTransactionMs = Math.ceil(options.idleInTransactionMs ?? 30_000);
    // Every pooled client from its creation, so that shutdown can drop one still opening too.
    const clients = this.clients;
    class Tracked extends Client {
      constructor(config?: string | pg.ClientConfig) {
        super(config);
        clients.add(this);
        this.on("end", () => clients.delete(this));
      }
    }
    this.pool = new pg.Pool({ ...this.clientConfig, Client: Tracked, max: options.poolSize ?? 10 });
    // A connection that dies while idle or checked out must not crash the process; the next
    // query on it fails and is retried.
    this.pool.on("error", () => this.trouble());
    this.pool.on("connect", (client) => {
      // Set once the session is open, not as a startup parameter, which PgBouncer refuses; queued
      // ahead of the connection's first query. A failure shows in that query.
      void client.query(`SET idle_in_transaction_session_timeout = ${idleInTransactionMs}`).catch(() => {});
      const pid = (client as unknown as { processID?: number }).processID;
      if (pid) {
        this.ownBackends.add(pid);
        client.on("end", () => this.ownBackends.delete(pid));
      }
    });
  }

  /** The first connection, retried while the server may still be starting. */
  async connect(timeoutSeconds: number): Promise<pg.PoolClient> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    for (let attempt = 0; ; attempt++) {
      this.assertOpen();
      try {
        return await this.pool.connect();
      } catch (error) {
        if (!isTransient(error)) {
          const advice = /client password must be/.test(messageOf(error))
            ? "The server asks for a password: give it in databaseUrl (postgres://user:password@host/db), PGPASSWORD or ~/.pgpass."
            : "Check databaseUrl.";
          throw new DatabaseError(`Cannot connect to PostgreSQL at ${this.where}: ${messageOf(error)}. ${advice}`, { cause: error });
        }
        // The last try is made at the deadline itself: a server back just before it is not missed.
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new DatabaseError(
            `Cannot connect to PostgreSQL at ${this.where} within ${timeoutSeconds}s: ${messageOf(error)}. ` +
              ((error as { code?: unknown }).code === "53300"
                ? "The server has no connection to spare: lower poolSize here or in other processes, or raise the server's max_connections (or the role's CONNECTION LIMIT, if the message names the role)."
                : "Check that the server is running and reachable, or raise connectTimeoutSeconds."),
            { cause: error },
          );
        }
        await sleep(Math.min(backoff(attempt), left));
      }
    }
  }

  /**
   * Runs `fn` on a pooled client, running it again from the start after a transient error
   * until the retry window is spent. `retryable` widens what counts as transient. `again` tells
   * `fn` it ran before, so an earlier attempt's commit may have gone through (its reply lost). An
   * attempt unanswered after `stuckMs` drops its connection, which fails it as a lost connection would.
   */
  async run<T>(
    fn: (client: pg.PoolClient, again: boolean) => Promise<T>, retryable: (error: unknown) => boolean = () => false, stuckMs = retry.stuckMs,
  ): Promise<T> {
    const start = Date.now();
    for (let attempt = 0; ; attempt++) {
      this.assertOpen();
      let client: pg.PoolClient | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      try {
        client = await this.pool.connect();
        const stuck = client;
        if (Number.isFinite(stuckMs)) watchdog = setTimeout(() => drop(stuck), stuckMs);
        const result = await fn(client, attempt > 0);
        clearTimeout(watchdog);
        client.release();
        return result;
      } catch (error) {
        clearTimeout(watchdog);
        const transient = isTransient(error);
        const code = (error as { code?: unknown }).code;
        if (transient) this.trouble();
        // A client that failed mid-conversation is in an unknown state: drop it.
        client?.release(transient ? (error as Error) : undefined);
        if (!transient && !gaveUp(code) && !retryable(error)) throw refusal(error, this.where);
        if (this.closed) throw new DatabaseError("The PostgreSQL store was closed during an operation.", { cause: error });
        if (Date.now() - start > retry.windowMs) {
          const seconds = retry.windowMs / 1000;
          throw new DatabaseError(
            outOfResources(code)
              ? `PostgreSQL at ${this.where} kept failing for ${seconds}s for want of resources (SQLSTATE ${code}): ${messageOf(error)}. ` +
                  "Free disk space or memory on the server (or raise max_connections); interrupted workflows run again from their checkpoints once it recovers."
              : gaveUp(code)
              ? `PostgreSQL at ${this.where} kept cancelling duro's statements for ${seconds}s (SQLSTATE ${code}): ${messageOf(error)}. ` +
                  "Raise statement_timeout and lock_timeout for duro's role or database; interrupted workflows run again from their checkpoints."
              : `Lost the connection to PostgreSQL at ${this.where} and could not get it back within ${seconds}s: ${messageOf(error)}. ` +
                  "Check that the server is up and reachable (behind a pooler, that its pool has room for each process's poolSize + 1 connections); " +
                  "interrupted workflows run again from their checkpoints once it is.",
            { cause: error },
          );
        }
        await sleep(transient || gaveUp(code) ? backoff(attempt) : 5 * Math.random());
      }
    }
  }

  /**
   * Refuses a pooler that hands each transaction to another server connection (PgBouncer's
   * transaction or statement mode): duro's prepared statements and LISTEN belong to a session. A
   * backend that changes under one connection, or that two connections open at once share, tells it.
   */
  async checkSession(): Promise<void> {
    const pid = async (client: pg.PoolClient) => Number((await client.query("SELECT pg_backend_pid() AS pid")).rows[0].pid);
    const shared = await this.run(async (one) => {
      const first = await pid(one);
      if ((await pid(one)) !== first) return true;
      if ((this.options.poolSize ?? 10) < 2) return false;
      // Closed after: a client that only enqueues holds one connection.
      const other = await this.pool.connect();
      try {
        return (await pid(other)) === first;
      } finally {
        other.release(true);
      }
    });
    if (shared) {
      throw new DatabaseError(
        `PostgreSQL at ${this.where} is reached through a pooler that hands each transaction to another server connection ` +
          "(PgBouncer's pool_mode = transaction or statement): duro's prepared statements and LISTEN need a session of their own. " +
          "Point databaseUrl at PostgreSQL itself, or at a pooler in session mode.",
      );
    }
  }

  /** Calls `listener` whenever a connection was lost or could not be made (the database flickered, for us and likely for others). */
  onTrouble(listener: () => void): void {
    this.troubleListeners.push(listener);
  }

  private trouble(): void {
    if (!this.closed) for (const listener of this.troubleListeners) listener();
  }

  /** Subscribes to wake keys; the first subscriber opens the LISTEN connection. */
  onNotify(listener: (keys: string[] | null) => void): void {
    this.listeners.push(listener);
    if (this.listeners.length === 1 && !this.closed) void this.listen();
  }

  private async listen(): Promise<void> {
    const client = new Client(this.clientConfig);
    this.listenClient = client;
    let lost = false;
    const reconnect = (error?: unknown) => {
      if (lost) return;
      lost = true;
      this.trouble();
      this.listenDown(error);
      if (this.listenClient === client) this.listenClient = undefined;
      clearInterval(this.listenPing);
      client.end().catch(() => {});
      if (this.closed) return;
      this.listenTimer = setTimeout(() => void this.listen(), backoff(this.listenAttempt++));
    };
    client.on("error", reconnect);
    client.on("end", reconnect);
    client.on("notification", ({ channel, payload, processId }) => {
      // Our own commits already woke this process's waiters directly; an echo would only cost reads.
      if (channel !== this.channel || this.ownBackends.has(processId)) return;
      // An empty payload stands for keys too long to send: re-check everything.
      this.emit(payload ? splitWakeKeys(payload) : null);
    });
    // No ping runs until LISTEN is in place: a link gone silent before then is given up as one
    // whose ping went unanswered would be.
    const opening = setTimeout(() => drop(client), retry.listenPingMs);
    opening.unref();
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    } catch (error) {
      reconnect(error);
      return;
    } finally {
      clearTimeout(opening);
    }
    if (lost) return;
    this.listenAttempt = 0;
    if (this.listenDownTold) this.options.info?.("The connection that hears other processes' commits (LISTEN) is open again: their wake-ups are pushed again.");
    this.listenDownSince = undefined;
    this.listenDownTold = false;
    // Whatever was committed before LISTEN took effect went unheard.
    this.emit(null);
    // Keepalive takes ~11 minutes to notice a link gone silent; until then no wake-up arrives.
    let answered = true;
    this.listenPing = setInterval(() => {
      if (!answered) return drop(client);
      answered = false;
      client.query("SELECT 1").then(() => (answered = true), () => {});
    }, retry.listenPingMs);
    this.listenPing.unref();
  }

  /**
   * Without its LISTEN connection this process hears other processes' commits only at its
   * safety poll: said once it has lasted (a restart of the server takes seconds), not per try.
   */
  private listenDown(error: unknown): void {
    const now = Date.now();
    this.listenDownSince ??= now;
    if (this.listenDownTold || this.closed || now - this.listenDownSince < retry.listenWarnMs) return;
    this.listenDownTold = true;
    const full = (error as { code?: unknown } | undefined)?.code === "53300";
    this.options.warn?.(
      `The connection that hears other processes' commits (LISTEN) has been down for ${Math.round((now - this.listenDownSince) / 1000)} s` +
        `${error ? ` (${messageOf(error)})` : ""}: until it opens, their wake-ups are heard at the safety poll only (safetyPollSeconds). ` +
        (full ? "The server refuses more connections: lower poolSize, or raise max_connections or the role's CONNECTION LIMIT." : "It is tried again with back-off."),
    );
  }

  private emit(keys: string[] | null): void {
    for (const listener of this.listeners) {
      try {
        listener(keys);
      } catch (error) {
        process.emitWarning(`duro: a change listener threw: ${messageOf(error)}`);
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new DatabaseError("The PostgreSQL store is closed: it closes at shutdown() (a shut-down Duro cannot launch again: create a new one).");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.listenTimer);
    clearInterval(this.listenPing);
    this.listeners = [];
    const client = this.listenClient;
    this.listenClient = undefined;
    // A connection on a link gone silent never answers the goodbye: drop what is left after a while.
    const hung = setTimeout(() => {
      for (const c of [...this.clients, ...(client ? [client] : [])]) drop(c);
    }, CLOSE_MS);
    await client?.end().catch(() => {});
    await this.pool.end();
    clearTimeout(hung);
  }
}

/** Runs `fn` between BEGIN and COMMIT, rolling back when it throws. */
export async function transaction<T>(client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await fn();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
