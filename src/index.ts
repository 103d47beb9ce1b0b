/** duro: durable execution for TypeScript. This file is the whole public API. */
export { Duro, type Workflow } from "./duro.js";
export { WorkflowQueue, type QueueOptions } from "./queue.js";
export { DuroClient, type ClientConfig, type EnqueueOptions } from "./client/client.js";
export {
  DuroError, WorkflowConflictError, NonDeterminismError, NotInWorkflowError, WorkflowNotFoundError, MaxStepRetriesExceededError,
  AwaitedWorkflowCancelledError, MaxRecoveryAttemptsExceededError, DuplicateWorkflowError, StreamTimeoutError, SerializationError,
  InvalidArgumentError, WorkflowCancelledError, DatabaseError,
} from "./errors.js";
export { registerErrorClass, type SerializationFormat } from "./serialization.js";
export type {
  DuroConfig, ForkOptions, ListWorkflowsFilter, Logger, ReturnWhen, ScheduleOptions, SendOptions, StartOptions, StepInfo, StepOptions, ValueOptions, WaitOptions,
  WorkflowHandle, WorkflowOptions, WorkflowStatus, WorkflowStatusString,
} from "./types.js";
