/**
 * `DuroClient`: for code outside the application (another service, a script, the CLI). It runs
 * no workflows — it enqueues them by name, talks to them and manages them through the same
 * Store. It connects on first use; call `close()` when done.
 */
import { Engine } from "../engine/engine.js";
import { cancel, checkIds, fork, listWorkflows, listWorkflowSteps, resume, setWorkflowDelay } from "../engine/management.js";
import { enqueueMany, start } from "../engine/start.js";
import { checkKey, checkOptions, KEYS, optionalBoolean } from "../engine/checks.js";
import * as ops from "../engine/operations.js";
import * as streams from "../engine/streams.js";
import { InvalidArgumentError } from "../errors.js";
import type { ForkOptions, ListWorkflowsFilter, Logger, StartOptions, StepInfo, SendOptions, WaitOptions, WorkflowHandle, WorkflowStatus } from "../types.js";

export interface ClientConfig {
  /** Default: `DURO_DATABASE_URL`, else `sqlite:./.duro/duro.sqlite`. */
  databaseUrl?: string | null | undefined;
  logger?: Logger | null | undefined;
  poolSize?: number | null | undefined;
  connectTimeoutSeconds?: number | null | undefined;
  /**
   * Default true: a database (or PostgreSQL schema) without duro's tables gets them, and an older
   * duro's schema is upgraded, as with `Duro`. false: either is a DatabaseError instead, and the
   * schema is left as it is (for tools that only read, such as the CLI).
   */
  createSchema?: boolean | null | undefined;
}

/** What to enqueue: a workflow by its registered name, on a queue, with start options. */
export interface EnqueueOptions extends StartOptions {
  workflowName: string;
  queueName: string;
}

/**
 * Access to a duro database from a process that runs no workflows (a web server, a script, the
 * CLI): enqueue, message, read events and streams, list and manage workflows. `close()` when done.
 */
export class DuroClient {
  private readonly engine: Engine;

  constructor(config: ClientConfig | null = {}) {
    const { createSchema = true, ...settings } = checkOptions("new DuroClient", config, KEYS.client);
    optionalBoolean("createSchema", createSchema);
    this.engine = new Engine({ ...settings, executorId: "duro-client" }, true, createSchema);
  }

  private async ready(): Promise<Engine> {
    await this.engine.launch();
    // Closed while connecting: the launch ended without launching anything.
    if (!this.engine.launched) throw this.engine.closedError();
    return this.engine;
  }

  /**
   * Enqueues a workflow by name. A name no executor has registered yet is stored and runs
   * once an executor that knows it is running. Returns its handle.
   */
  async enqueue<R = unknown>(options: EnqueueOptions, ...args: unknown[]): Promise<WorkflowHandle<R>> {
    const { workflowName, ...startOptions } = checkEnqueue(options);
    const id = await start(await this.ready(), workflowName, args, startOptions);
    return this.handle<R>(id);
  }

  /** Enqueues one workflow per argument list in one transaction (all or nothing). */
  async enqueueMany<R = unknown>(options: EnqueueOptions, argsList: readonly (readonly unknown[])[]): Promise<WorkflowHandle<R>[]> {
    const { workflowName, ...startOptions } = checkEnqueue(options);
    const ids = await enqueueMany(await this.ready(), workflowName, argsList, startOptions);
    return ids.map((id) => this.handle<R>(id));
  }

  send(destinationId: string, message: unknown, topic?: string | null, options?: SendOptions | null): Promise<void>;
  send(destinationId: string, message: unknown, options: SendOptions): Promise<void>;
  async send(destinationId: string, message: unknown, topic?: string | null | SendOptions, options?: SendOptions | null): Promise<void> {
    return ops.send(await this.ready(), destinationId, message, topic, options);
  }

  async getEvent<T = unknown>(workflowId: string, key: string, timeoutSeconds?: number | WaitOptions | null): Promise<T | null> {
    return ops.getEvent(await this.ready(), workflowId, key, timeoutSeconds) as Promise<T | null>;
  }

  async getAllEvents(workflowId: string): Promise<Record<string, unknown>> {
    return ops.getAllEvents(await this.ready(), workflowId);
  }

  async *readStream<T = unknown>(workflowId: string, key: string, options?: { offset?: number | null | undefined; timeoutSeconds?: number | null | undefined } | null): AsyncIterable<T> {
    yield* streams.readStream(await this.ready(), workflowId, key, options) as AsyncIterable<T>;
  }

  /** A handle on a workflow; `existingWorkflow: false` allows one not created yet (its getResult waits for it). */
  async retrieveWorkflow<R = unknown>(workflowId: string, existingWorkflow: boolean | { existingWorkflow?: boolean | null | undefined } | null = true): Promise<WorkflowHandle<R>> {
    return this.handle<R>(workflowId, await ops.allowsMissing(await this.ready(), workflowId, existingWorkflow));
  }

  async getResult<R = unknown>(workflowId: string): Promise<R> {
    return ops.getResult(await this.ready(), workflowId) as Promise<R>;
  }

  async getWorkflowStatus(workflowId: string): Promise<WorkflowStatus | null> {
    const engine = await this.ready();
    return engine.getStatus(checkKey("workflowId", workflowId));
  }

  async listWorkflows(filter: ListWorkflowsFilter | null = {}): Promise<WorkflowStatus[]> {
    return listWorkflows(await this.ready(), filter);
  }

  async listQueuedWorkflows(filter: Omit<ListWorkflowsFilter, "queuesOnly"> | null = {}): Promise<WorkflowStatus[]> {
    return listWorkflows(await this.ready(), { ...filter, queuesOnly: true });
  }

  async listWorkflowSteps(workflowId: string, options: { limit?: number | null | undefined; offset?: number | null | undefined } | null = {}): Promise<StepInfo[]> {
    return listWorkflowSteps(await this.ready(), workflowId, options);
  }

  async cancelWorkflow(workflowId: string, options?: { cancelChildren?: boolean | null | undefined } | null): Promise<void> {
    return this.cancelWorkflows([workflowId], options);
  }

  async cancelWorkflows(workflowIds: readonly string[], options?: { cancelChildren?: boolean | null | undefined } | null): Promise<void> {
    return cancel(await this.ready(), workflowIds, options);
  }

  /** Re-queues the workflow (on `queueName`, or an internal queue without limits) from its last completed step. */
  async resumeWorkflow<R = unknown>(workflowId: string, options: { queueName?: string | null | undefined } | null = {}): Promise<WorkflowHandle<R>> {
    const [handle] = await this.resumeWorkflows<R>([workflowId], options);
    return handle;
  }

  async resumeWorkflows<R = unknown>(workflowIds: readonly string[], options: { queueName?: string | null | undefined } | null = {}): Promise<WorkflowHandle<R>[]> {
    await resume(await this.ready(), checkIds(workflowIds), options);
    return workflowIds.map((id) => this.handle<R>(id));
  }

  async forkWorkflow<R = unknown>(
    workflowId: string,
    startStep: number,
    options: ForkOptions | null = {},
  ): Promise<WorkflowHandle<R>> {
    return this.handle<R>(await fork(await this.ready(), workflowId, startStep, options));
  }

  async setWorkflowDelay(workflowId: string, options: { delaySeconds?: number | null | undefined; delayUntilEpochMs?: number | null | undefined } | null): Promise<void> {
    return setWorkflowDelay(await this.ready(), workflowId, options);
  }

  /** Releases the database connection(s). */
  close(): Promise<void> {
    return this.engine.shutdown();
  }

  /** The same as `close()`, under the reference library's name. */
  destroy(): Promise<void> {
    return this.close();
  }

  /** Handles are only made after the client is connected, so their calls need no `ready()`. */
  private handle<R>(workflowId: string, untilCreated = false): WorkflowHandle<R> {
    return ops.handleOf<R>(this.engine, workflowId, untilCreated);
  }
}

const ENQUEUE_KEYS = [...KEYS.start, "workflowName"];

/** The options checked, without those given as null (start() reads a null timeout as "none"). */
function checkEnqueue(given: EnqueueOptions): EnqueueOptions {
  if (given === undefined || given === null) throw new InvalidArgumentError("enqueue() needs options: { workflowName, queueName }.");
  const options = checkOptions("enqueue", given, ENQUEUE_KEYS, ["timeoutSeconds", "deadlineEpochMs"]);
  if (typeof options.workflowName !== "string" || options.workflowName === "") throw new InvalidArgumentError("enqueue() needs a workflowName.");
  checkKey("workflowName", options.workflowName);
  if (typeof options.queueName !== "string" || options.queueName === "") throw new InvalidArgumentError("enqueue() needs a queueName.");
  return options as EnqueueOptions;
}
