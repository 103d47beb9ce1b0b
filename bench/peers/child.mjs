// One workload of one system, in a process of its own: node child.mjs <system> <workload> <database URL>.
// Prints one JSON line: {"system", "workload", "config", "result"} (or "error").
const [system, workload, url] = process.argv.slice(2);
const mod = await import(`./systems/${system}.mjs`);
let line;
try {
  if (typeof mod[workload] !== "function") throw new Error(`${system} has no workload ${workload}`);
  const result = await mod[workload]({ url });
  line = { system, workload, config: mod.config, result };
} catch (error) {
  line = { system, workload, error: String(error?.stack ?? error) };
}
const { closeQueries } = await import("./common.mjs");
await closeQueries();
console.log(JSON.stringify(line));
// Some libraries leave timers or sockets behind after stopping; the measurement is done.
process.exit(line.error ? 1 : 0);
