/**
 * Queue claims (SQLite). One transaction, under the write lock, promotes the queue's due DELAYED
 * rows, then takes what the queue's limits leave (on a partitioned queue, each partition's, from
 * those with work and room) in queue order, each row with its operations.
 */
import type Database from "better-sqlite3";
import { placeholders, type prepare } from "./statements.js";
import { toOperationRow, toWorkflowRow } from "../sql.js";
import { partitionsFullHere, type Claimed, type ClaimRequest, type OperationRow, type WorkflowRow } from "../store.js";

type Statements = ReturnType<typeof prepare>;

/**
 * Queued rows an executor of `@version` may claim: its version's, and those of no version when
 * `@version` is the newest that an executor alive since `@liveSince` runs (as the reference
 * library: "NULL means the latest version runs it"), or when no live executor says.
 */
const CLAIMABLE_BY = `(app_version = @version OR (app_version IS NULL AND @version = COALESCE((
  SELECT v.app_version FROM app_versions v JOIN executors e ON e.app_version = v.app_version
  WHERE e.heartbeat_at >= @liveSince ORDER BY v.first_seen_at DESC, v.app_version DESC LIMIT 1), @version)))`;

const picksOf = new WeakMap<Database.Database, Map<string, Database.Statement>>();

/** A claim's pick of queued rows, prepared once per shape and database (a partitioned queue's claim picks from every partition with work). */
function pick(db: Database.Database, inPartition: string, names: number): Database.Statement {
  const key = `${inPartition}|${names}`;
  const picks = picksOf.get(db) ?? picksOf.set(db, new Map()).get(db)!;
  let statement = picks.get(key);
  if (!statement) {
    statement = db.prepare(
      `SELECT workflow_id FROM workflow_status WHERE queue_name = ? AND status = 'ENQUEUED'${inPartition}
         AND name IN (${placeholders(names)}) AND ${CLAIMABLE_BY}
       ORDER BY priority, rowid LIMIT ?`,
    );
    if (picks.size >= 64) picks.clear();
    picks.set(key, statement);
  }
  return statement;
}

/** One claim, in a transaction of its own or in the caller's. */
export function claim(db: Database.Database, s: Statements, request: ClaimRequest): Claimed {
  const { queueName, executorId, appVersion, workflowNames } = request;
  return db.transaction(() => {
    // Read once the write lock is held (another process may have had it): the claims' stamps
    // are then in commit order, which the rate limit's count relies on.
    const now = Math.max(request.now, Date.now());
    s.promoteDelayed.run(now, queueName, now);
    const partitions = request.partitioned ? partitionsOf(s, request) : [null];
    const claimed: { workflow: WorkflowRow; operations: OperationRow[] }[] = [];
    let rateOpensInMs: number | undefined;
    for (const partition of partitions) {
      const left = request.max - claimed.length;
      if (left <= 0 || workflowNames.length === 0) break;
      const perPartition = request.perPartition;
      const localLeft = perPartition ? perPartition.workerConcurrency - (perPartition.running[partition ?? ""] ?? 0) : left;
      // A partition of a key is picked and counted with `=`, which its indexes serve (IS does not).
      const inPartition = !request.partitioned ? "" : partition === null ? " AND partition_key IS NULL" : " AND partition_key = ?";
      const scope = request.partitioned ? [queueName, partition] : [queueName];
      const picked = request.partitioned && partition === null ? [queueName] : scope;
      let budget = Math.min(left, localLeft);
      if (request.concurrency !== undefined) {
        const { n } = (!request.partitioned ? s.running : partition === null ? s.runningInPartition : s.runningInKey).get(...scope) as { n: number };
        budget = Math.min(budget, request.concurrency - n);
      }
      if (request.rateLimit) {
        const since = now - request.rateLimit.periodMs;
        const { n, first } = (request.partitioned ? s.rateWindowOfPartition : s.rateWindow).get(...scope, since) as { n: number; first: number | null };
        budget = Math.min(budget, request.rateLimit.limit - n);
        // The window's oldest start (this claim's, stamped now, if it holds none) leaves it this long from now.
        rateOpensInMs = Math.min(rateOpensInMs ?? Infinity, (first ?? now) - since);
      }
      if (budget <= 0) continue;
      const ids = pick(db, inPartition, workflowNames.length)
        .all(...picked, ...workflowNames, { version: appVersion, liveSince: request.liveSince }, budget) as { workflow_id: string }[];
      for (const { workflow_id } of ids) {
        const row = s.claim.get(executorId, now, now, appVersion, now, workflow_id) as Record<string, unknown> | undefined;
        if (!row) continue;
        const operations = (s.operations.all(workflow_id, -1, 0) as Record<string, unknown>[]).map(toOperationRow);
        claimed.push({ workflow: toWorkflowRow(row), operations });
      }
    }
    const { next, queued } = s.nextDelayed.get(queueName, queueName) as { next: number | null; queued: number };
    return { claimed, nextDelayedAt: next, moreQueued: queued === 1, rateOpensInMs };
  }).immediate();
}

/**
 * The partitions a claim takes from, in key order: those with work and room (all of them under a
 * rate limit, which may leave any partition without room), then the partition of no key.
 */
function partitionsOf(s: Statements, request: ClaimRequest): (string | null)[] {
  const { queueName, concurrency, rateLimit, max } = request;
  const keys = s.partitions.all({ queue: queueName, full: JSON.stringify(partitionsFullHere(request)), concurrency: concurrency ?? null, max: rateLimit ? -1 : max }) as { partition_key: string }[];
  const keyless = (s.keylessPartition.get(queueName) as { queued: number }).queued === 1;
  return [...keys.map((r) => r.partition_key), ...(keyless ? [null] : [])];
}
