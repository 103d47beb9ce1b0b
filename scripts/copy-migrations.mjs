// Copies each backend's numbered SQL migrations next to its compiled store, so dist/ is self-contained.
// The copy replaces what was there: a migration renamed in src/ must not linger in dist/ and run too.
import { cpSync, existsSync, rmSync } from "node:fs";
for (const dialect of ["sqlite", "postgres"]) {
  const from = new URL(`../src/storage/${dialect}/migrations/`, import.meta.url);
  const to = new URL(`../dist/storage/${dialect}/migrations/`, import.meta.url);
  rmSync(to, { recursive: true, force: true });
  if (existsSync(from)) cpSync(from, to, { recursive: true });
}
