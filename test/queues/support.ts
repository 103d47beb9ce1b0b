/**
 * Helpers for the queue suite only (the general ones are in ../helpers.ts).
 *
 * - `Tracker`: a shared counter of running step bodies. Every executor's step body calls
 *   `enter()` when it starts and `exit()` when it ends; the tracker keeps the maximum overlap
 *   overall, per executor and per partition, and every start time.
 * - `maxInWindow(times, periodMs)`: the most starts in any half-open window `[x, x + periodMs)`,
 *   to check a rate limit from start times (also those logged by executor processes).
 */

interface Count {
  running: number;
  max: number;
}

export interface Start {
  id: string;
  executor: string;
  partition: string | null;
  t: number;
}

export class Tracker {
  running = 0;
  max = 0;
  readonly starts: Start[] = [];
  readonly order: string[] = [];
  private readonly byExecutor = new Map<string, Count>();
  private readonly byPartition = new Map<string, Count>();

  enter(executor: string, id: string, partition: string | null = null): void {
    this.running++;
    this.max = Math.max(this.max, this.running);
    this.starts.push({ id, executor, partition, t: Date.now() });
    this.order.push(id);
    bump(this.byExecutor, executor, 1);
    if (partition !== null) bump(this.byPartition, partition, 1);
  }

  exit(executor: string, partition: string | null = null): void {
    this.running--;
    bump(this.byExecutor, executor, -1);
    if (partition !== null) bump(this.byPartition, partition, -1);
  }

  runningOn(executor: string): number {
    return this.byExecutor.get(executor)?.running ?? 0;
  }

  maxOn(executor: string): number {
    return this.byExecutor.get(executor)?.max ?? 0;
  }

  runningIn(partition: string): number {
    return this.byPartition.get(partition)?.running ?? 0;
  }

  maxIn(partition: string): number {
    return this.byPartition.get(partition)?.max ?? 0;
  }

  executors(): string[] {
    return [...this.byExecutor.keys()];
  }
}

function bump(map: Map<string, Count>, key: string, delta: number): void {
  const count = map.get(key) ?? { running: 0, max: 0 };
  count.running += delta;
  count.max = Math.max(count.max, count.running);
  map.set(key, count);
}

/** The most of `times` (epoch ms) in any half-open window `[x, x + periodMs)`. */
export function maxInWindow(times: number[], periodMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let j = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (j < i) j = i;
    while (j < sorted.length && sorted[j] < sorted[i] + periodMs) j++;
    best = Math.max(best, j - i);
  }
  return best;
}
