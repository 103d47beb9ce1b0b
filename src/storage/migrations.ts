/**
 * Numbered, append-only migration files (`000001_init.sql`, …), one folder per dialect, shipped
 * next to the compiled store. Each backend applies the missing ones in one transaction that also
 * records the new version, so two processes can never both apply one.
 */
import { readdirSync, readFileSync } from "node:fs";
import { DatabaseError } from "../errors.js";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(folder: URL): Migration[] {
  return readdirSync(folder)
    .filter((file) => /^\d{6}_.+\.sql$/.test(file))
    .sort()
    .map((file) => ({ version: Number(file.slice(0, 6)), name: file, sql: readFileSync(new URL(file, folder), "utf8") }));
}

/** The migrations still to apply on a database at `current`; refuses a database newer than this code. */
export function pendingMigrations(all: Migration[], current: number, where: string): Migration[] {
  const latest = all.length ? all[all.length - 1].version : 0;
  if (current > latest) {
    throw new DatabaseError(
      `The database at ${where} has duro schema version ${current}, but this duro knows only up to ${latest}. ` +
        `It was written by a newer duro: upgrade duro, or point databaseUrl at another database.`,
    );
  }
  return all.filter((m) => m.version > current);
}
