/**
 * Default workflow IDs are UUIDv7 (RFC 9562): 48 bits of millisecond time, then random bits.
 * Workflows started together get neighbouring IDs, so their rows and checkpoints land on the
 * same few index pages — a batch commit writes a handful of pages instead of one per workflow.
 *
 * IDs made by one process only grow (RFC 9562's method 1): within a millisecond the 12 bits
 * after the time are a counter, so workflows started in the same millisecond list in the order
 * they were started (listings order by creation time, then ID).
 */
import { randomBytes } from "node:crypto";

let pool = Buffer.alloc(0);
let offset = 0;
let lastMs = 0;
let counter = 0;

export function uuidv7(): string {
  if (offset + 10 > pool.length) {
    pool = randomBytes(10 * 256);
    offset = 0;
  }
  const bytes = Buffer.alloc(16);
  pool.copy(bytes, 6, offset, offset + 10);
  offset += 10;
  let ms = Date.now();
  if (ms > lastMs) counter = bytes.readUInt16BE(6) & 0x7ff; // a random start in the lower half leaves room to count
  else if (++counter > 0xfff) {
    ms = lastMs + 1; // 4,096 in one millisecond: borrow the next one
    counter = 0;
  } else ms = lastMs;
  lastMs = ms;
  bytes.writeUIntBE(ms, 0, 6);
  bytes.writeUInt16BE(0x7000 | counter, 6); // version 7, then the counter
  bytes[8] = 0x80 | (bytes[8] & 0x3f); // variant 10
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
