/**
 * Numbered, append-only migration files (`000001_init.sql`, …), one folder per dialect, shipped
 * next to the compiled store. Each backend applies the missing ones in one transaction that also
 * records the new version, so two processes can never both apply one.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DatabaseError } from "../errors.js";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(folder: URL): Migration[] {
  let files: string[];
  try {
    files = readdirSync(folder).filter((file) => /^\d{6}_.+\.sql$/.test(file)).sort();
  } catch (error) {
    // Not the database's fault: duro's own files are not where its code is (a bundler moved the code).
    throw new DatabaseError(
      `duro's schema migrations are missing from ${fileURLToPath(folder)}: duro reads them from files next to its code, ` +
        "so it cannot run from a bundle. Keep duro out of the bundle (esbuild --packages=external or --external:duro), or reinstall it.",
      { cause: error },
    );
  }
  return files.map((file) => ({ version: Number(file.slice(0, 6)), name: file, sql: readFileSync(new URL(file, folder), "utf8") }));
}

/**
 * The migrations still to apply on a database at `current`; refuses a database newer than this
 * code, and, unless `change`, one that would need any (a tool that only reads, such as the CLI,
 * leaves the schema as it is: upgraded, it would lock out the processes still on an older duro).
 */
export function pendingMigrations(all: Migration[], current: number, where: string, change = true): Migration[] {
  const latest = all.length ? all[all.length - 1].version : 0;
  if (current > latest) {
    throw new DatabaseError(
      `The database at ${where} has duro schema version ${current}, but this duro knows only up to ${latest}. ` +
        `It was written by a newer duro: upgrade duro, or point databaseUrl at another database.`,
    );
  }
  const pending = all.filter((m) => m.version > current);
  if (pending.length && !change) {
    throw new DatabaseError(
      current === 0
        ? `There are no duro tables in the database at ${where}: check the database URL; \`duro migrate\` creates them.`
        : `The database at ${where} has duro schema version ${current}, older than this duro's ${latest}, and is left as it is: ` +
          `\`duro migrate\` upgrades it, once every process that uses it runs this duro (an older duro refuses a newer schema).`,
    );
  }
  return pending;
}

/** What a migration did, said at info level (`duro migrate` prints it); nothing when there was nothing to do. */
export function migrated(from: number, to: number, where: string): string | undefined {
  if (from === to) return undefined;
  return from === 0 ? `Created duro's schema (version ${to}) at ${where}.` : `Upgraded duro's schema at ${where} from version ${from} to ${to}.`;
}
