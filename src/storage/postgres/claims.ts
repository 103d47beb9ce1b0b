/**
 * Claim tokens (PostgreSQL). Every queue claim, takeover and recovery marks the rows it takes
 * with a token of its own (`claim_token`), so that one sent again after its commit's reply was
 * lost can find what its first commit took (see takenBefore), and the rows a claim statement
 * returns are read back here.
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { toOperationRow, toWorkflowRow } from "../sql.js";
import type { ClaimRequest, OperationRow } from "../store.js";

const processTag = randomBytes(9).toString("base64url");
let claims = 0;
const claimTokens = new WeakMap<ClaimRequest, string>();
/** A token no other claim, takeover or recovery of any process uses. */
export const newClaimToken = () => `${processTag}.${(claims++).toString(36)}`;
/** The token a claim marks its rows with: one per request, the same when the request is sent again. */
export function claimTokenOf(request: ClaimRequest): string {
  let token = claimTokens.get(request);
  if (!token) claimTokens.set(request, (token = newClaimToken()));
  return token;
}

/**
 * The rows an earlier attempt of a claim, takeover or recovery marked with `token` that are still
 * PENDING on `executorId`: when one is sent again because its reply was lost, its first commit
 * may have gone through. Those rows are its own (a claim's count against its `max`); without
 * this they would stay PENDING here with nothing running them.
 */
export async function takenBefore(client: pg.PoolClient, sql: { claimedBy: string }, token: string, executorId: string) {
  const { rows } = await client.query({ name: "duro_claimedBy", text: sql.claimedBy, values: [token, executorId] });
  return claimedRows(rows[0].claimed);
}

/** Stands for operations a read left out for their size (see INLINE_OPERATIONS_BYTES): the store reads them on their own. */
export const NOT_INLINED: OperationRow[] = Object.freeze([]) as unknown as OperationRow[];

/** Operations as an aggregating read returns them: a JSON array, or null when they were too large to inline. */
export const operationsFrom = (json: unknown) => (json === null ? NOT_INLINED : (json as Record<string, unknown>[]).map(toOperationRow));

/** A claim statement's `claimed` column: each workflow claimed with its operations. */
export const claimedRows = (json: unknown) =>
  ((json ?? []) as { workflow: Record<string, unknown>; operations: Record<string, unknown>[] | null }[]).map((r) => ({
    workflow: toWorkflowRow(r.workflow), operations: operationsFrom(r.operations),
  }));
