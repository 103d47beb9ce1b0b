/**
 * One timer for every durable wait of an executor: sleeps, recv/getEvent timeouts, workflow
 * deadlines. Entries sit in a binary heap ordered by wake-up time; a single `setTimeout` is
 * armed for the earliest. 10,000 sleeping workflows cost 10,000 small heap entries, not
 * 10,000 Node timers. A cancelled entry (a recv answered before its timeout) lets go of what
 * it would have called at once, and the heap sheds cancelled entries once they are most of it,
 * so answered waits hold no memory until the time they would have ended. Each entry fires in
 * the async context that set it, not in that of whatever armed the shared timeout (a cron tick
 * armed while a workflow slept would otherwise start as that workflow's child).
 */
import { AsyncResource } from "node:async_hooks";

/**
 * `fn`, to be called in the async context of this call. (Not AsyncResource.bind, which defines
 * two deprecation wrappers per call: 4% of the CPU of 100 concurrent workflows awaiting results.)
 */
export function inThisContext<T>(fn: () => T): () => T {
  const resource = new AsyncResource("duro");
  return () => resource.runInAsyncScope(fn);
}

/** How long shutdown waits for each of its polite steps (writes under way, the executor's farewell) before going on without it. */
export const SHUTDOWN_STEP_MS = 2_000;

/** The wait before try `attempt` (from 0) of something the database refused: 100 ms doubling up to `capMs`; it holds no process open. */
export const backedOff = (attempt: number, capMs: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, capMs)).unref());

/** Whether `promise` settles within `ms` (it is left to go on either way). */
export async function settlesWithin(promise: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = (promise ?? Promise.resolve()).then(() => true, () => true);
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Entry {
  at: number;
  seq: number;
  /** Null once cancelled or fired. */
  fire: (() => void) | null;
  inHeap: boolean;
  /** Keeps the process alive until it fires (see `at`). */
  holds: boolean;
}

/** Cancelled entries the heap may hold before it is rebuilt without them (if they are also most of it). */
const SPARSE = 1024;

export interface TimerHandle {
  cancel(): void;
}

/** setTimeout's and setInterval's limit: longer waits re-arm (a longer interval would fire every 1 ms). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * The latest time duro stores, in epoch ms (the year 287,396): longer waits, timeouts and delays
 * end there, as `Infinity` does where it is allowed. Both databases keep it exactly.
 */
export const NEVER = Number.MAX_SAFE_INTEGER;

/** Whole epoch ms `seconds` after `now`, no later than NEVER. */
export const secondsAfter = (now: number, seconds: number): number => Math.min(Math.round(now + seconds * 1000), NEVER);

/** A time or duration in ms as stored: whole, no more than NEVER. */
export const storedMs = (ms: number): number => Math.min(Math.round(ms), NEVER);

export class Timers {
  private heap: Entry[] = [];
  private seq = 0;
  private timer?: NodeJS.Timeout;
  private armedAt = Infinity;
  private cancelled = 0;
  /** Live entries that hold the process. */
  private holding = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Calls `fire` at epoch ms `at` (at once if that is past). Unless `holds` is false, the process
   * stays alive until then, as for a setTimeout; the rest (a watch that matters only while the
   * process lives anyway) let it exit.
   */
  at(at: number, fire: () => void, holds = true): TimerHandle {
    const entry: Entry = { at, seq: this.seq++, fire: inThisContext(fire), inHeap: true, holds };
    if (holds) this.holding++;
    this.push(entry);
    if (at < this.armedAt) this.arm();
    else this.hold();
    return { cancel: () => this.cancel(entry) };
  }

  /** The shared timeout holds the process while an entry that holds is waiting. */
  private hold(): void {
    if (this.holding > 0) this.timer?.ref();
    else this.timer?.unref();
  }

  private cancel(entry: Entry): void {
    if (!entry.fire) return;
    entry.fire = null;
    if (entry.holds) {
      this.holding--;
      this.hold();
    }
    if (!entry.inHeap) return;
    this.cancelled++;
    if (this.cancelled > SPARSE && this.cancelled * 2 > this.heap.length) {
      const kept: Entry[] = [];
      for (const e of this.heap) if (e.fire) kept.push(e);
      else e.inHeap = false;
      this.heap = kept.sort((a, b) => a.at - b.at || a.seq - b.seq); // a sorted array is a heap
      this.cancelled = 0;
      this.arm();
    }
  }

  /** Resolves at epoch ms `at`; rejects with the signal's reason if it is aborted first. */
  until(at: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        handle.cancel();
        reject(signal!.reason);
      };
      const handle = this.at(at, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  get size(): number {
    return this.heap.length;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = Infinity;
    this.heap = [];
    this.cancelled = 0;
    this.holding = 0;
  }

  private arm(): void {
    clearTimeout(this.timer);
    const first = this.heap[0];
    if (!first) {
      this.timer = undefined;
      this.armedAt = Infinity;
      return;
    }
    this.armedAt = first.at;
    this.timer = setTimeout(() => this.run(), Math.min(Math.max(0, first.at - this.now()), MAX_TIMEOUT_MS));
    this.hold();
  }

  private run(): void {
    const now = this.now();
    const due: Entry[] = [];
    while (this.heap.length && this.heap[0].at <= now) {
      const entry = this.pop()!;
      entry.inHeap = false;
      if (entry.fire) due.push(entry);
      else this.cancelled--;
    }
    this.arm();
    for (const entry of due) {
      const fire = entry.fire;
      entry.fire = null;
      if (fire && entry.holds) this.holding--;
      fire?.(); // unless an earlier one of these cancelled it
    }
    this.hold();
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(entry: Entry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
