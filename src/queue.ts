/** `WorkflowQueue`: a named durable queue with concurrency, rate and priority limits. */
import type { Duro } from "./duro.js";
import type { QueueOptions } from "./types.js";

export type { QueueOptions };

/**
 * Declares a queue on an executor. Enqueue with `duro.startWorkflow(wf.with({ queueName }), …)`.
 * Every executor that should run the queue's work declares it with the same options; limits
 * (`concurrency`, `rateLimit`) hold across all of them, `workerConcurrency` per executor.
 * @throws InvalidArgumentError for a bad option or a name already declared on this instance.
 */
export class WorkflowQueue {
  constructor(
    duro: Duro,
    readonly name: string,
    readonly options: QueueOptions | null = {},
  ) {
    duro.engine.addQueue(name, options);
  }
}
