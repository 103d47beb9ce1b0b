/**
 * duro as an application meets it, outside this repository's own imports: required from a
 * CommonJS program through the package's exports, and copied into a bundle (its code without the
 * migration files next to it). Uses the build in dist/ (`pretest`).
 */
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { backends, freshDatabaseUrl } from "./helpers.js";

// Under node_modules, so the copies below still find duro's dependencies (pg, better-sqlite3).
const dir = mkdtempSync(join(resolve("node_modules"), ".duro-package-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const node = (script: string, env: Record<string, string> = {}) =>
  execFileSync(process.execPath, [script], { cwd: dir, encoding: "utf8", env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });

it('a CommonJS program gets the API from require("duro"), and the version from "duro/package.json"', () => {
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  symlinkSync(resolve("."), join(dir, "node_modules", "duro"));
  writeFileSync(join(dir, "app.cjs"), `const duro = require("duro");
console.log(typeof duro.Duro, typeof duro.DuroClient, new duro.WorkflowNotFoundError("x") instanceof duro.DuroError, require("duro/package.json").name);`);
  expect(node(join(dir, "app.cjs")).trim()).toBe("function function true duro");
});

describe.each(backends)("%s", (backend) => {
  it("duro's code without its migration files (as a bundler leaves it) fails with a DatabaseError that says to keep duro out of the bundle", () => {
    const copy = join(dir, `bundle-${backend}`);
    cpSync(resolve("dist"), copy, { recursive: true, filter: (path) => !/migrations$/.test(path) });
    writeFileSync(join(dir, `open-${backend}.mjs`), `import { Duro, DatabaseError } from ${JSON.stringify(join(copy, "index.js"))};
const duro = new Duro({ databaseUrl: process.env.URL, logger: { debug() {}, info() {}, warn() {}, error() {} } });
try { await duro.launch(); console.log("launched"); } catch (error) { console.log(error instanceof DatabaseError, error.message); } finally { await duro.shutdown(); }`);
    const out = node(join(dir, `open-${backend}.mjs`), { URL: freshDatabaseUrl(backend) });
    expect(out).toMatch(/^true duro's schema migrations are missing from /);
    expect(out).toContain("--packages=external");
  });
});
