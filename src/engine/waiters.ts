/**
 * Push wake-ups. A waiter waits on a wake key ("status:<id>", "message:<id>", …) with a check
 * that reads storage and says whether its wait is over. Writers in this process wake the keys of
 * each batch they commit; the store reports commits of other processes (by key on PostgreSQL via
 * LISTEN/NOTIFY, or "something changed" on SQLite); a slow safety poll covers anything missed.
 * A waiter holds no connection and no timer of its own (timeouts go through `Timers`). While any
 * wait is under way one shared handle keeps the process alive: the wake-ups above use unref'd
 * timers, and a script whose last act is awaiting a client's getResult must not exit first.
 */
import { inThisContext, type Timers } from "./timers.js";

interface Waiter {
  keys: string[];
  check: () => Promise<boolean>;
  checking: boolean;
  again: boolean;
  /** The deadline passed; the wait ends as soon as no check is running (a check in flight still counts). */
  expired: boolean;
  settle: (error?: unknown) => void;
}

/** Up to `most` of a list at a time, each call going on where the last stopped (wrapping round). */
export class Turns {
  private next = 0;

  take<T>(items: T[], most: number): T[] {
    if (items.length <= most) return items;
    const start = this.next % items.length;
    const taken = items.slice(start, start + most);
    if (taken.length < most) taken.push(...items.slice(0, most - taken.length));
    this.next = start + most;
    return taken;
  }
}

export class Waiters {
  private byKey = new Map<string, Set<Waiter>>();
  private keepAlive: NodeJS.Timeout | undefined;
  private readonly turns = new Turns();
  /** Set at shutdown: the error of every wait, those under way and those asked for later. */
  private closedWith: (() => unknown) | undefined;

  /** `beforeWait` runs before every wait (the engine starts hearing other processes then, if it had no need before). */
  constructor(
    private readonly timers: Timers,
    private readonly beforeWait: () => void = () => {},
  ) {}

  /**
   * Resolves `true` once `check()` returns true (it is tried at once, then on every wake of
   * `key`), or `false` at epoch ms `deadline`. A check that throws, or `signal` aborting,
   * rejects the wait. The check runs in the caller's async context (its workflow's, if any)
   * whoever wakes it.
   */
  wait(key: string | string[], check: () => Promise<boolean>, deadline = Infinity, signal?: AbortSignal): Promise<boolean> {
    const keys = typeof key === "string" ? [key] : key;
    // Shut down: one look, as nothing would wake a wait any more (one begun while the store
    // closes would never end).
    const closed = this.closedWith;
    if (closed) {
      return check().then((done) => {
        if (!done) throw closed();
        return true;
      });
    }
    this.beforeWait();
    return new Promise<boolean>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      let timer: { cancel(): void } | undefined;
      const onAbort = () => waiter.settle(signal!.reason);
      const waiter: Waiter = {
        keys,
        check: inThisContext(check),
        checking: false,
        again: false,
        expired: false,
        settle: (error?: unknown) => {
          this.remove(waiter);
          timer?.cancel();
          signal?.removeEventListener("abort", onAbort);
          if (error === undefined) resolve(true);
          else if (error === false) resolve(false);
          else reject(error);
        },
      };
      for (const k of keys) {
        let set = this.byKey.get(k);
        if (!set) this.byKey.set(k, (set = new Set()));
        set.add(waiter);
      }
      this.keepAlive ??= setInterval(() => {}, 2 ** 31 - 1);
      if (deadline !== Infinity) {
        timer = this.timers.at(deadline, () => {
          waiter.expired = true;
          if (!waiter.checking) waiter.settle(false);
        });
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.run(waiter);
    });
  }

  /** Re-checks up to `most` waiters, taking turns with the next call (the safety poll's share). */
  wakeSome(most: number): void {
    for (const waiter of this.turns.take([...this.all()], most)) this.run(waiter);
  }

  /** Re-checks the waiters of these keys (`null`: all of them). */
  wake(keys: Iterable<string> | null): void {
    if (keys === null) {
      for (const waiter of this.all()) this.run(waiter);
      return;
    }
    for (const key of keys) {
      const set = this.byKey.get(key);
      if (set) for (const waiter of set) this.run(waiter);
    }
  }

  get size(): number {
    return this.all().size;
  }

  /** Ends every wait with an error of `errorOf`, and refuses waits from now on (used at shutdown). */
  close(errorOf: () => unknown): void {
    this.closedWith = errorOf;
    for (const waiter of this.all()) waiter.settle(errorOf());
  }

  private all(): Set<Waiter> {
    const all = new Set<Waiter>();
    for (const set of this.byKey.values()) for (const waiter of set) all.add(waiter);
    return all;
  }

  private run(waiter: Waiter): void {
    if (waiter.checking) {
      waiter.again = true; // a wake during a check must not be lost
      return;
    }
    waiter.checking = true;
    waiter.again = false;
    waiter.check().then(
      (done) => {
        waiter.checking = false;
        if (done) waiter.settle();
        else if (waiter.expired) waiter.settle(false);
        else if (waiter.again) this.run(waiter);
      },
      (error) => {
        waiter.checking = false;
        waiter.settle(error ?? new Error("wait check failed"));
      },
    );
  }

  private remove(waiter: Waiter): void {
    for (const key of waiter.keys) {
      const set = this.byKey.get(key);
      if (!set) continue;
      set.delete(waiter);
      if (set.size === 0) this.byKey.delete(key);
    }
    if (this.byKey.size === 0) {
      clearInterval(this.keepAlive);
      this.keepAlive = undefined;
    }
  }
}
