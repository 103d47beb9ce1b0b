/**
 * Default workflow IDs are UUIDv7 (RFC 9562): 48 bits of millisecond time, then random bits.
 * Workflows started together get neighbouring IDs, so their rows and checkpoints land on the
 * same few index pages — a batch commit writes a handful of pages instead of one per workflow.
 */
import { randomBytes } from "node:crypto";

let pool = Buffer.alloc(0);
let offset = 0;

export function uuidv7(now = Date.now()): string {
  if (offset + 10 > pool.length) {
    pool = randomBytes(10 * 256);
    offset = 0;
  }
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(now, 0, 6);
  pool.copy(bytes, 6, offset, offset + 10);
  offset += 10;
  bytes[6] = 0x70 | (bytes[6] & 0x0f); // version 7
  bytes[8] = 0x80 | (bytes[8] & 0x3f); // variant 10
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
