/** Picks the backend for a database URL. */
import { InvalidArgumentError } from "../errors.js";
import type { Store } from "./store.js";

export const DEFAULT_DATABASE_URL = "sqlite:./.duro/duro.sqlite";

export interface StoreOptions {
  poolSize?: number;
  connectTimeoutSeconds?: number;
  /**
   * PostgreSQL ends a transaction left idle this long (its process frozen mid-transaction), so a
   * lock it holds, a queue's turn to claim say, is not held for longer than the executor lease.
   */
  idleInTransactionMs?: number;
  /** Told of a lasting trouble that costs speed, not correctness (PostgreSQL: other processes' wake-ups not heard). */
  warn?: (message: string) => void;
  info?: (message: string) => void;
}

/** Parses a URL into a backend description without connecting (so bad URLs fail fast). */
export function parseDatabaseUrl(url: string): { dialect: "sqlite"; path: string } | { dialect: "postgres"; url: string } {
  if (typeof url !== "string" || url.trim() === "") {
    throw new InvalidArgumentError(`databaseUrl (or DURO_DATABASE_URL, when databaseUrl is not given) must be a non-empty string such as "sqlite:./app.sqlite" or "postgres://user@host/db".`);
  }
  if (url.startsWith("sqlite:")) {
    let path = url.slice("sqlite:".length);
    if (path.startsWith("//")) path = path.slice(2); // sqlite:///abs/path or sqlite://rel/path
    if (path === "") throw new InvalidArgumentError(`databaseUrl "${url}" names no file; use e.g. "sqlite:./.duro/app.sqlite" or "sqlite::memory:".`);
    return { dialect: "sqlite", path };
  }
  if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    try {
      const parsed = new URL(url);
      if (!parsed.hostname && !parsed.searchParams.get("host")) throw new Error("no host");
    } catch {
      throw new InvalidArgumentError(`databaseUrl is not a valid PostgreSQL URL; expected postgres://user:password@host:port/database.`);
    }
    return { dialect: "postgres", url };
  }
  // Only the scheme of a URL is repeated (the rest may hold a password); a bare path is shown whole.
  const got = url.includes(":") ? `${url.split(":")[0]}:…` : url;
  throw new InvalidArgumentError(
    `databaseUrl must start with "sqlite:" or "postgres://" (got "${got}"). Example: "sqlite:./.duro/app.sqlite"${url.includes(":") ? "" : `, or "sqlite:${url}" for that file`}.`,
  );
}

export async function openStore(url: string, options: StoreOptions = {}): Promise<Store> {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect === "sqlite") {
    const { SqliteStore } = await import("./sqlite/store.js");
    return new SqliteStore(parsed.path, { connectTimeoutSeconds: options.connectTimeoutSeconds, info: options.info });
  }
  const { PostgresStore } = await import("./postgres/store.js");
  return new PostgresStore(parsed.url, options);
}
