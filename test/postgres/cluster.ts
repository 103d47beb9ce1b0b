/**
 * A private PostgreSQL cluster for the tests that stop, restart or kill the database, so the
 * shared server (and the other suites using it) is never disturbed.
 *
 *   const cluster = await Cluster.create();   // initdb + start, on a free port, in a temp dir
 *   cluster.url("schema_x")                  // postgres://postgres@127.0.0.1:<port>/postgres?schema=schema_x
 *   await cluster.restart("fast"); await cluster.stop("immediate"); await cluster.crash(); await cluster.start();
 *   await cluster.destroy();                  // stop (immediate) and remove the directory
 *
 * The binaries come from /usr/lib/postgresql/<newest>/bin (or PG_BIN). PostgreSQL refuses to run
 * as root, so as root every command runs as the `postgres` OS user (runuser), with the temp dir
 * handed to that user. Every cluster created here is also stopped when the test process exits,
 * so a failed test never leaves a postmaster behind.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

function binDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, "bin", "pg_ctl"))) : [];
  if (!versions.length) throw new Error(`No PostgreSQL binaries under ${root} (set PG_BIN): the fault tests need initdb and pg_ctl.`);
  versions.sort((a, b) => Number(b) - Number(a));
  return join(root, versions[0], "bin");
}

const isRoot = process.getuid?.() === 0;
const postgresUser = (() => {
  if (!isRoot) return null;
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
})();

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const live = new Set<Cluster>();
process.on("exit", () => {
  // Last resort (a crashed test file): stop whatever is still running, synchronously.
  for (const cluster of live) cluster.killNow();
});

export class Cluster {
  private readonly bin = binDir();
  readonly dataDir: string;
  readonly logFile: string;
  private running = false;

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.dataDir = join(dir, "data");
    this.logFile = join(dir, "postgres.log");
  }

  /** initdb a new cluster in a temp dir and start it on a free port. */
  static async create(): Promise<Cluster> {
    const dir = mkdtempSync(join(tmpdir(), "duro-pg-"));
    chmodSync(dir, 0o700);
    if (postgresUser) chownSync(dir, postgresUser.uid, postgresUser.gid);
    const cluster = new Cluster(dir, await freePort());
    live.add(cluster);
    try {
      await cluster.exec("initdb", ["-D", cluster.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
      await cluster.start();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  /** The cluster's URL; `schema` selects duro's schema (a fresh one per test keeps tests apart). */
  url(schema?: string, auth = "postgres"): string {
    return `postgres://${auth}@127.0.0.1:${this.port}/postgres${schema ? `?schema=${schema}` : ""}`;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      "-c listen_addresses=127.0.0.1",
      // Durability against an OS crash is not what these tests are about; a killed server keeps
      // what it wrote in the page cache, so recovery after a crash is still exercised.
      "-c fsync=off",
      "-c full_page_writes=off",
      "-c max_connections=200",
    ].join(" ");
    await this.exec("pg_ctl", ["start", "-D", this.dataDir, "-l", this.logFile, "-w", "-t", "60", "-o", options]);
    this.running = true;
  }

  /** Stops the server: "fast" disconnects clients and shuts down cleanly; "immediate" aborts (crash recovery at the next start). */
  async stop(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await this.exec("pg_ctl", ["stop", "-D", this.dataDir, "-m", mode, "-w", "-t", "60"]);
    this.running = false;
  }

  async restart(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /** kill -9 of the postmaster and every process of the cluster: a server crash. */
  async crash(): Promise<void> {
    const pid = this.postmasterPid();
    if (pid === null) return;
    const children = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
      .stdout.split("\n").map((s) => Number(s.trim())).filter((n) => n > 0);
    for (const p of [pid, ...children]) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // already gone
      }
    }
    // Wait until every one of them is gone, or the next start finds the shared memory in use.
    const deadline = Date.now() + 10_000;
    while ([pid, ...children].some(alive)) {
      if (Date.now() > deadline) throw new Error(`PostgreSQL processes of ${this.dataDir} survived SIGKILL`);
      await new Promise((r) => setTimeout(r, 10));
    }
    this.running = false;
  }

  postmasterPid(): number | null {
    const file = join(this.dataDir, "postmaster.pid");
    if (!existsSync(file)) return null;
    const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
    return pid > 0 && alive(pid) ? pid : null;
  }

  /** Runs `sql` on a fresh connection (superuser) and returns its rows. */
  async query<R extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ connectionString: this.url(), application_name: "duro-test-admin" });
    client.on("error", () => {});
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as R[];
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Terminates every backend duro opened (application_name 'duro'); returns how many. */
  async terminateDuroBackends(): Promise<number> {
    const rows = await this.query<{ n: string }>(
      `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE application_name = 'duro' AND pid <> pg_backend_pid()`,
    );
    return Number(rows[0].n);
  }

  async destroy(): Promise<void> {
    this.killNow();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Synchronous immediate stop, for clean-up paths. */
  killNow(): void {
    if (this.postmasterPid() === null) return;
    spawnSync(...this.command("pg_ctl", ["stop", "-D", this.dataDir, "-m", "immediate", "-w", "-t", "30"]), { stdio: "ignore" });
    this.running = false;
  }

  private command(tool: string, args: string[]): [string, string[]] {
    const path = join(this.bin, tool);
    return postgresUser ? ["runuser", ["-u", "postgres", "--", path, ...args]] : [path, args];
  }

  /** Runs a PostgreSQL tool without blocking the event loop (the code under test keeps running meanwhile). */
  private exec(tool: string, args: string[]): Promise<void> {
    const [file, argv] = this.command(tool, args);
    return new Promise((resolve, reject) => {
      const child = spawn(file, argv, { cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.setEncoding("utf8").on("data", (s: string) => (output += s));
      child.stderr.setEncoding("utf8").on("data", (s: string) => (output += s));
      child.on("error", reject);
      child.on("close", (code) => {
        if (code === 0) return resolve();
        const log = existsSync(this.logFile) ? readFileSync(this.logFile, "utf8").slice(-2000) : "";
        reject(new Error(`${tool} ${args.join(" ")} failed (${code}):\n${output}\n${log}`));
      });
    });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
