// `npm run bench`: every bench script on every backend, one JSON line each.
import { spawnSync } from "node:child_process";

const scripts = ["workflows.mjs", "sleepers.mjs", "wakeup.mjs", "queues.mjs", "messaging.mjs"];
const backends = (process.env.BENCH_BACKENDS ?? "sqlite,postgres").split(",");
let failed = false;
for (const script of scripts) {
  for (const backend of backends) {
    const run = spawnSync(process.execPath, [new URL(script, import.meta.url).pathname, backend], { stdio: "inherit" });
    if (run.status !== 0) failed = true;
  }
}
process.exit(failed ? 1 : 0);
