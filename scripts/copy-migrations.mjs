// Copies each backend's numbered SQL migrations next to its compiled store, so dist/ is self-contained.
import { cpSync, existsSync } from "node:fs";
for (const dialect of ["sqlite", "postgres"]) {
  const from = new URL(`../src/storage/${dialect}/migrations/`, import.meta.url);
  if (existsSync(from)) cpSync(from, new URL(`../dist/storage/${dialect}/migrations/`, import.meta.url), { recursive: true });
}
