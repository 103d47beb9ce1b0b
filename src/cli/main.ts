#!/usr/bin/env node
/**
 * `duro`: the operator's command line. Every command works through a DuroClient on
 * `--db` (or DURO_DATABASE_URL, else the default SQLite file). Tables by default, `--json`
 * for scripts. Exit codes: 0 done, 1 failed, 2 bad usage, 3 workflow not found.
 */
import { existsSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { DuroClient } from "../client/client.js";
import { DuroError, InvalidArgumentError, WorkflowNotFoundError } from "../errors.js";
import { DEFAULT_DATABASE_URL, parseDatabaseUrl } from "../storage/open.js";
import { rfc3339 } from "../engine/management.js";
import { NEVER } from "../engine/timers.js";
import type { ListWorkflowsFilter, StepInfo, WorkflowStatus } from "../types.js";

const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3 } as const;

type Options = NonNullable<ParseArgsConfig["options"]>;

const common: Options = {
  db: { type: "string" },
  "connect-timeout": { type: "string" },
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
};

const listFilters: Options = {
  status: { type: "string", multiple: true },
  name: { type: "string", multiple: true },
  queue: { type: "string", multiple: true },
  user: { type: "string", multiple: true },
  "app-version": { type: "string", multiple: true },
  executor: { type: "string", multiple: true },
  prefix: { type: "string", multiple: true },
  parent: { type: "string", multiple: true },
  "forked-from": { type: "string", multiple: true },
  since: { type: "string" },
  until: { type: "string" },
  limit: { type: "string", default: "50" },
  offset: { type: "string" },
  asc: { type: "boolean", default: false },
};

interface Command {
  usage: string;
  summary: string;
  options: Options;
  /** Takes workflow IDs as positional arguments (the others take none). */
  ids?: true;
  run(client: DuroClient, args: { values: Record<string, any>; positionals: string[] }): Promise<unknown>;
  print?(result: any): void;
}

const commands: Record<string, Command> = {
  list: {
    usage: "duro list [--status S]… [--name N]… [--queue Q]… [--user U]… [--app-version V]… [--executor E]… [--prefix P]… [--parent ID]… [--forked-from ID]… [--since RFC3339] [--until RFC3339] [--limit N] [--offset N] [--asc]",
    summary: "List workflows, newest first, 50 unless --limit says otherwise (filters repeat to mean 'any of').",
    options: listFilters,
    run: (client, { values }) => client.listWorkflows({ ...toFilter(values), loadInput: false, loadOutput: false }),
    print: (rows: WorkflowStatus[]) => printStatuses(rows),
  },
  get: {
    ids: true,
    usage: "duro get <workflow-id>",
    summary: "Show one workflow's status, input, output and error.",
    options: {},
    run: async (client, { positionals }) => {
      const status = await client.getWorkflowStatus(one(positionals));
      if (!status) throw new WorkflowNotFoundError(positionals[0]);
      return status;
    },
    print: (status: WorkflowStatus) => {
      for (const [key, value] of Object.entries(status)) console.log(`${key.padEnd(20)} ${printable(show(value, /(At|EpochMs)$/.test(key)))}`);
    },
  },
  steps: {
    ids: true,
    usage: "duro steps <workflow-id> [--limit N] [--offset N]",
    summary: "List a workflow's recorded operations in order.",
    options: { limit: { type: "string" }, offset: { type: "string" } },
    run: async (client, { values, positionals }) => {
      const id = one(positionals);
      const steps = await client.listWorkflowSteps(id, { limit: int(values.limit, "limit"), offset: int(values.offset, "offset") });
      // The library lists an unknown workflow's steps as none; here it is worth saying.
      if (steps.length === 0 && !(await client.getWorkflowStatus(id))) throw new WorkflowNotFoundError(id);
      return steps;
    },
    print: (steps: StepInfo[]) =>
      table(
        ["ID", "NAME", "OUTPUT / ERROR", "CHILD", "MS"],
        steps.map((s) => [
          String(s.functionId), s.functionName, s.error ? `✗ ${s.error.name}: ${s.error.message}` : show(s.output, s.functionName === "duro.sleep" || s.functionName === "duro.now"), s.childWorkflowId ?? "",
          // A wait under way holds its wake-up time: no duration yet.
          s.startedAtEpochMs !== null && s.completedAtEpochMs !== null && s.completedAtEpochMs <= Date.now() ? String(s.completedAtEpochMs - s.startedAtEpochMs) : "",
        ]),
      ),
  },
  cancel: {
    ids: true,
    usage: "duro cancel <workflow-id>… [--children]",
    summary: "Cancel workflows (with --children, their descendants too); they stop at their next step.",
    options: { children: { type: "boolean" } },
    run: async (client, { values, positionals }) => {
      const children = values.children === true;
      // With --children, the descendants it cancels are listed among the cancelled too.
      const descendants = children ? await descendantsOf(client, some(positionals)) : [];
      const before = await statuses(client, [...some(positionals), ...descendants]);
      await client.cancelWorkflows(positionals, { cancelChildren: children });
      const cancelledNow = (status: string, id: string) => status === "CANCELLED" && before.get(id) !== "CANCELLED";
      const result = await outcome(client, positionals, "cancelled", cancelledNow);
      const after = await statuses(client, descendants);
      result.cancelled.push(...descendants.filter((id) => after.has(id) && cancelledNow(after.get(id)!, id)));
      return result;
    },
    print: (r: Outcome<"cancelled">) => printOutcome("Cancelled", r.cancelled, r.leftAlone),
  },
  resume: {
    ids: true,
    usage: "duro resume <workflow-id>… [--queue Q]",
    summary: "Resume workflows from their last completed step (through a queue with --queue).",
    options: { queue: { type: "string" } },
    run: async (client, { values, positionals }) => {
      await client.resumeWorkflows(some(positionals), { queueName: values.queue });
      return outcome(client, positionals, "resumed", (status) => status !== "SUCCESS" && status !== "ERROR");
    },
    print: (r: Outcome<"resumed">) => printOutcome("Resumed", r.resumed, r.leftAlone),
  },
  fork: {
    ids: true,
    usage: "duro fork <workflow-id> --step N [--new-id ID] [--queue Q [--partition-key K]] [--app-version V] [--timeout SECONDS]",
    summary: "Start a copy of a workflow that re-runs from operation N, reusing what came before.",
    options: { step: { type: "string" }, "new-id": { type: "string" }, queue: { type: "string" }, "partition-key": { type: "string" }, "app-version": { type: "string" }, timeout: { type: "string" } },
    run: async (client, { values, positionals }) => {
      const step = int(values.step, "step");
      if (step === undefined) throw new InvalidArgumentError("fork needs --step N (the first operation to run again).");
      const handle = await client.forkWorkflow(one(positionals), step, {
        newWorkflowId: values["new-id"], queueName: values.queue, partitionKey: values["partition-key"], appVersion: values["app-version"],
        timeoutSeconds: positive(values.timeout, "timeout"),
      });
      return { workflowId: handle.workflowId, forkedFrom: positionals[0] };
    },
    print: (r: { workflowId: string; forkedFrom: string }) => console.log(`Forked ${printable(r.forkedFrom)} as ${printable(r.workflowId)}.`),
  },
  "queue list": {
    usage: "duro queue list [--queue Q]… [--status S]… [--limit N]",
    summary: "List workflows waiting in or running from queues.",
    options: { queue: listFilters.queue, status: listFilters.status, limit: listFilters.limit },
    run: (client, { values }) => client.listQueuedWorkflows({ ...toFilter(values), loadInput: false, loadOutput: false }),
    print: (rows: WorkflowStatus[]) => printStatuses(rows),
  },
  migrate: {
    usage: "duro migrate",
    summary: "Create or upgrade the database schema.",
    options: {},
    run: async (client) => {
      await client.listWorkflows({ limit: 1, loadInput: false, loadOutput: false }); // connecting migrates
      return { migrated: told.find((line) => /^(Created|Upgraded) duro's schema/.test(line)) ?? null };
    },
    print: ({ migrated }: { migrated: string | null }) => console.log(migrated ?? "duro's schema is at the current version already: nothing to do."),
  },
};

/** The usage of every command, or of those whose name starts with `prefix` ("queue "). */
function help(prefix = ""): string {
  const lines = Object.entries(commands).filter(([name]) => name.startsWith(prefix)).map(([, c]) => `  ${c.usage}\n      ${c.summary}`);
  return `duro — inspect and operate durable workflows\n\nUsage:\n${lines.join("\n")}\n\nEvery command takes --db URL (default: DURO_DATABASE_URL, else sqlite:./.duro/duro.sqlite), --connect-timeout SECONDS (how long to keep trying an unreachable PostgreSQL, default 30), --json, --help.\nExit codes: 0 done, 1 failed, 2 bad usage, 3 workflow not found.`;
}

/** What the library said at info level (what a migration did, for `duro migrate`). */
const told: string[] = [];

const isHelp = (arg: string | undefined) => arg === "--help" || arg === "-h" || arg === "help";

async function main(argv: string[]): Promise<number> {
  const name = argv[0] === "queue" ? `queue ${argv[1] ?? ""}` : argv[0];
  const rest = argv.slice(name?.startsWith("queue ") ? 2 : 1);
  // Help asked for goes to stdout; help shown for a bad call, to stderr with the usage exit code.
  if (!name || isHelp(name)) {
    (name ? console.log : console.error)(help());
    return name ? EXIT.ok : EXIT.usage;
  }
  if (argv[0] === "queue" && (argv[1] === undefined || isHelp(argv[1]) || argv[1].startsWith("-"))) {
    if (isHelp(argv[1])) console.log(help("queue "));
    else console.error(`"duro queue" needs a subcommand first.\n\n${help("queue ")}`);
    return isHelp(argv[1]) ? EXIT.ok : EXIT.usage;
  }
  const command = commands[name];
  if (!command) {
    console.error(`Unknown command "${argv.slice(0, name.startsWith("queue") ? 2 : 1).join(" ")}".\n\n${help()}`);
    return EXIT.usage;
  }
  let parsed: { values: Record<string, any>; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: { ...common, ...command.options }, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`${(error as Error).message}\nUsage: ${command.usage}`);
    return EXIT.usage;
  }
  if (!command.ids && parsed.positionals.length) {
    console.error(`duro ${name} takes no arguments but options, got "${parsed.positionals.join(" ")}".\nUsage: ${command.usage}`);
    return EXIT.usage;
  }
  if (parsed.values.help) {
    console.log(`${command.summary}\n\nUsage: ${command.usage}\n\nOptions for every command: --db URL, --connect-timeout SECONDS, --json, --help`);
    return EXIT.ok;
  }
  let connectTimeoutSeconds: number | undefined;
  try {
    connectTimeoutSeconds = positive(parsed.values["connect-timeout"], "connect-timeout");
  } catch (error) {
    console.error(`duro ${name}: ${(error as Error).message}`);
    return EXIT.usage;
  }
  const logger = { debug() {}, info: (line: string) => void told.push(line), warn() {}, error() {} };
  // Only migrate creates duro's tables: elsewhere a database without them is a mistyped one.
  const client = new DuroClient({ databaseUrl: parsed.values.db, connectTimeoutSeconds, logger, createSchema: name === "migrate" });
  try {
    const result = await command.run(name === "migrate" ? client : existing(client, parsed.values.db), parsed);
    if (parsed.values.json) console.log(JSON.stringify(result, jsonReplacer, 2));
    else command.print?.(result);
    return EXIT.ok;
  } catch (error) {
    // The library's advice, in the CLI's terms.
    const message = (error as Error).message
      .replace("raise connectTimeoutSeconds", "raise --connect-timeout")
      .replace(/\bdatabaseUrl\b/g, "--db (or DURO_DATABASE_URL)");
    console.error(`duro ${name}: ${printable(message)}`);
    if (error instanceof WorkflowNotFoundError) return EXIT.notFound;
    if (error instanceof InvalidArgumentError) return EXIT.usage;
    if (!(error instanceof DuroError)) console.error((error as Error).stack);
    return EXIT.failed;
  } finally {
    await client.close();
  }
}

/**
 * The client, checking at each call (after the command has read its arguments, so bad usage is
 * still told first) that a SQLite database is there: a mistyped path is an error, not a new
 * empty database (`duro migrate` makes one on purpose).
 */
function existing(client: DuroClient, db: string | undefined): DuroClient {
  const parsed = parseDatabaseUrl(db ?? process.env.DURO_DATABASE_URL ?? DEFAULT_DATABASE_URL);
  const check = () => {
    if (parsed.dialect === "sqlite" && parsed.path !== ":memory:" && !existsSync(parsed.path)) {
      throw new DuroError(`There is no SQLite database at "${parsed.path}": check --db (or DURO_DATABASE_URL); \`duro migrate\` creates one.`);
    }
  };
  return new Proxy(client, {
    get(target, key) {
      const value = Reflect.get(target, key);
      return typeof value === "function" ? (...args: unknown[]) => (check(), value.apply(target, args)) : value;
    },
  });
}

function toFilter(values: Record<string, any>): ListWorkflowsFilter {
  return {
    status: values.status, name: values.name, queueName: values.queue, user: values.user, appVersion: values["app-version"],
    executorId: values.executor, workflowIdPrefix: values.prefix, parentWorkflowId: values.parent, forkedFrom: values["forked-from"],
    startTime: time(values.since, "since"), endTime: time(values.until, "until"), limit: int(values.limit, "limit"), offset: int(values.offset, "offset"),
    sortDesc: !values.asc,
  };
}

function int(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`--${name} must be a non-negative integer, got "${value}".`);
  return Number(value);
}

function positive(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0) throw new InvalidArgumentError(`--${name} must be a positive number of seconds, got "${value}".`);
  return Number(value);
}

function time(value: string | undefined, name: string): string | undefined {
  if (value !== undefined) rfc3339(`--${name}`, value);
  return value;
}

function one(positionals: string[]): string {
  if (positionals.length !== 1) throw new InvalidArgumentError(`Expected one workflow ID, got ${positionals.length}.`);
  return positionals[0];
}

function some(positionals: string[]): string[] {
  if (positionals.length === 0) throw new InvalidArgumentError("Expected at least one workflow ID.");
  return positionals;
}

/** What a cancel or resume did to each workflow: those it changed, and those it left alone (finished, or unknown: null). */
type Outcome<K extends string> = Record<K, string[]> & { leftAlone: { workflowId: string; status: string | null }[] };

/** Workflows listed by ID or by parent ID, asked for in parts: a listing's filters take 5,000 values at most. */
async function listedBy(client: DuroClient, key: "workflowIds" | "parentWorkflowId", ids: string[]): Promise<WorkflowStatus[]> {
  const rows: WorkflowStatus[] = [];
  for (let i = 0; i < ids.length; i += 5000) rows.push(...(await client.listWorkflows({ [key]: ids.slice(i, i + 5000), loadInput: false, loadOutput: false })));
  return rows;
}

async function statuses(client: DuroClient, ids: string[]): Promise<Map<string, string>> {
  return new Map((await listedBy(client, "workflowIds", ids)).map((r) => [r.workflowId, r.status as string]));
}

/** The children of these workflows, their children, and so on. */
async function descendantsOf(client: DuroClient, ids: string[]): Promise<string[]> {
  // A named workflow may be another's descendant: each is listed once, among the named.
  const seen = new Set(ids);
  const found: string[] = [];
  let level = ids;
  while (level.length) {
    level = (await listedBy(client, "parentWorkflowId", level)).map((r) => r.workflowId).filter((id) => !seen.has(id));
    for (const id of level) seen.add(id), found.push(id);
  }
  return found;
}

async function outcome<K extends string>(client: DuroClient, ids: string[], key: K, changed: (status: string, id: string) => boolean): Promise<Outcome<K>> {
  const statusOf = await statuses(client, ids);
  const unique = [...new Set(ids)];
  const done = unique.filter((id) => statusOf.has(id) && changed(statusOf.get(id)!, id));
  const leftAlone = unique.filter((id) => !done.includes(id)).map((id) => ({ workflowId: id, status: statusOf.get(id) ?? null }));
  return { [key]: done, leftAlone } as Outcome<K>;
}

function printOutcome(verb: string, changed: string[], leftAlone: { workflowId: string; status: string | null }[]): void {
  if (changed.length) console.log(`${verb} ${changed.map(printable).join(", ")}.`);
  for (const { workflowId, status } of leftAlone) {
    console.log(status === null ? `${printable(workflowId)}: no such workflow.` : `${printable(workflowId)} is ${status}: left as it is.`);
  }
}

/**
 * Stored text as a terminal may show it: control characters (a newline, an escape sequence) and
 * the marks that reorder text (right-to-left overrides, which could disguise an ID) written as escapes.
 */
const printable = (text: string) => text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** A value in a table cell; `time` for the fields that hold epoch milliseconds (not user data). */
function show(value: unknown, time = false): string {
  if (value === undefined) return "";
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  // A wait without end (an infinite timeout) is stored as NEVER, past Date's range.
  if (time && value === NEVER) return "never";
  if (time && typeof value === "number" && Math.abs(value) <= 8.64e15) return new Date(value).toISOString();
  const text = typeof value === "string" ? value : JSON.stringify(value, jsonReplacer);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  return value;
}

function printStatuses(rows: WorkflowStatus[]): void {
  table(
    ["WORKFLOW ID", "NAME", "STATUS", "QUEUE", "EXECUTOR", "CREATED", "ATTEMPTS"],
    rows.map((r) => [r.workflowId, r.workflowName, r.status, r.queueName ?? "", r.executorId ?? "", new Date(r.createdAt).toISOString(), String(r.recoveryAttempts)]),
  );
}

function table(headers: string[], rows: string[][]): void {
  if (rows.length === 0) {
    console.log("(none)");
    return;
  }
  rows = rows.map((row) => row.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  console.log(line(headers));
  for (const row of rows) console.log(line(row));
}

// A reader that stops early (`duro list | head`) closes the pipe: the rest of the output is not wanted.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  process.exit(process.exitCode ?? EXIT.ok);
});
// The library's advice to an application (register the error classes it reads back) is no use to an
// operator: the table shows such an error by its name anyway. Other warnings are printed as Node would.
process.removeAllListeners("warning");
process.on("warning", (warning) => {
  if (!warning.message.startsWith("duro: a stored error of class")) console.error(`(node) ${warning.name}: ${warning.message}`);
});
process.exitCode = await main(process.argv.slice(2));
