/**
 * Every error duro throws on its own account. All extend {@link DuroError}, carry a stable
 * `name`, and say in their message what to do about them.
 */

export class DuroError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The same workflow ID was started with another workflow name. */
export class WorkflowConflictError extends DuroError {
  constructor(
    readonly workflowId: string,
    readonly existingName: string,
    readonly requestedName: string,
  ) {
    super(
      existingName === requestedName
        ? `Workflow ID "${workflowId}" is already taken (by a workflow "${existingName}"). Pick a new ID for a new workflow.`
        : `Workflow ID "${workflowId}" already belongs to workflow "${existingName}", not "${requestedName}". ` +
            `A workflow ID is an idempotency key: pick a new ID for a different workflow.`,
    );
  }
}

/**
 * Replay met a recorded operation that differs from what the code asks for now, or the code did
 * something whose order would differ on replay (two stream reads in flight at once).
 */
export class NonDeterminismError extends DuroError {
  constructor(
    readonly workflowId: string,
    readonly functionId: number,
    readonly recordedName: string,
    readonly expectedName: string,
    message?: string,
  ) {
    super(
      message ??
        `Workflow "${workflowId}" operation #${functionId}: "${recordedName}" was recorded but "${expectedName}" was called. ` +
          `Workflow code must call the same steps in the same order on every run; use patch() to change a deployed workflow.`,
    );
  }

  static concurrentRecvs(workflowId: string, functionId: number, topic: string | null): NonDeterminismError {
    return new NonDeterminismError(workflowId, functionId, "duro.recv", "duro.recv",
      `Workflow "${workflowId}" called recv on topic ${JSON.stringify(topic)} while another recv of its on that topic was under way. ` +
        `Which message each would take depends on timing: receive one message at a time per topic, as in the reference library.`,
    );
  }

  static concurrentStreamReads(workflowId: string, streamWorkflowId: string, key: string): NonDeterminismError {
    return new NonDeterminismError(workflowId, 0, "duro.readStream", "duro.readStream",
      `Workflow "${workflowId}" read stream "${key}" of workflow "${streamWorkflowId}" while another of its stream reads was waiting. ` +
        `Values of concurrent reads are recorded in arrival order, which a replay cannot repeat: read one stream at a time, or each in its own child workflow.`,
    );
  }
}

/** A method that only makes sense inside a workflow was called outside one. */
export class NotInWorkflowError extends DuroError {
  /** `orStep`: the method works in a step too. */
  constructor(method: string, orStep = false) {
    super(
      orStep
        ? `${method}() can only be called from within a workflow or a step. Call it from a function registered with registerWorkflow() or registerStep() (or run by runStep()).`
        : `${method}() can only be called from within a workflow. Call it from a function registered with registerWorkflow().`,
    );
  }
}

export class WorkflowNotFoundError extends DuroError {
  constructor(readonly workflowId: string, detail = "") {
    super(`No workflow with ID "${workflowId}" exists${detail ? ` (${detail})` : ""}. Check the ID, or start the workflow first.`);
  }
}

/** A step with retries failed on every attempt; `errors` holds one error per attempt. */
export class MaxStepRetriesExceededError extends DuroError {
  constructor(
    readonly stepName: string,
    readonly maxAttempts: number,
    readonly errors: unknown[],
  ) {
    const last = errors[errors.length - 1];
    super(
      `Step "${stepName}" failed on all ${maxAttempts} attempts; last error: ${last instanceof Error ? last.message : String(last)}. ` +
        `Raise maxAttempts or fix the cause.`,
      { cause: last },
    );
  }
}

/** The workflow whose result was awaited was cancelled. */
export class AwaitedWorkflowCancelledError extends DuroError {
  /** `timedOutAfterMs`: cancelled because its deadline passed (null: a deadline without a timeout of its own, which a resume drops). */
  constructor(readonly workflowId: string, timedOutAfterMs?: number | null) {
    super(
      timedOutAfterMs === undefined
        ? `Workflow "${workflowId}" was cancelled, so it has no result. Resume it with resumeWorkflow() to let it finish.`
        : timedOutAfterMs === null
          ? `Workflow "${workflowId}" was cancelled when its deadline passed, so it has no result. resumeWorkflow() runs it again without that deadline.`
          : `Workflow "${workflowId}" was cancelled when its deadline passed (timeoutSeconds ${timedOutAfterMs / 1000}), so it has no result. ` +
            `resumeWorkflow() runs it again under a fresh timeout of the same length; ` +
            `to give it longer, fork it with a larger timeoutSeconds (forkWorkflow(id, startStep, { timeoutSeconds })).`,
    );
  }
}

/** The workflow was recovered more often than `maxRecoveryAttempts` and is parked. */
export class MaxRecoveryAttemptsExceededError extends DuroError {
  constructor(readonly workflowId: string, readonly maxRecoveryAttempts: number) {
    super(
      `Workflow "${workflowId}" exceeded ${maxRecoveryAttempts} recovery attempts and was set to MAX_RECOVERY_ATTEMPTS_EXCEEDED. ` +
        `Find why it keeps crashing, then call resumeWorkflow() on it.`,
    );
  }
}

/** A workflow with the same deduplication ID is already queued. */
export class DuplicateWorkflowError extends DuroError {
  constructor(readonly queueName: string, readonly deduplicationId: string) {
    super(
      `Queue "${queueName}" already holds a workflow with deduplication ID "${deduplicationId}". ` +
        `It can be enqueued again once that workflow has finished.`,
    );
  }
}

/** No stream value arrived within the reader's timeout. */
export class StreamTimeoutError extends DuroError {
  constructor(readonly workflowId: string, readonly key: string, readonly timeoutSeconds: number) {
    super(`No value arrived on stream "${key}" of workflow "${workflowId}" within ${timeoutSeconds}s. Raise timeoutSeconds or check the writer.`);
  }
}

/** A value could not be serialized (or a stored value could not be read back). */
export class SerializationError extends DuroError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An argument or option is out of range, of the wrong type, or contradicts another. */
export class InvalidArgumentError extends DuroError {}

/**
 * Thrown inside a running workflow once it has been cancelled (or timed out), at its next
 * durable operation. It unwinds the body; the workflow's status stays CANCELLED.
 */
export class WorkflowCancelledError extends DuroError {
  constructor(readonly workflowId: string) {
    super(`Workflow "${workflowId}" was cancelled; it stops at its next durable operation.`);
  }
}

/** The database cannot be reached, opened or migrated. */
export class DatabaseError extends DuroError {}
