/**
 * Logging. The default logger writes warnings and errors to stderr (info and debug too when
 * DURO_LOG_LEVEL says so). `contextLogger` adds the current workflow and step IDs to each line.
 */
import type { Logger } from "../types.js";
import { als } from "./context.js";

const LEVELS = ["debug", "info", "warn", "error"] as const;
const toldUnknown = new Set<string>();

export function consoleLogger(level = process.env.DURO_LOG_LEVEL ?? "warn"): Logger {
  const given = LEVELS.indexOf(level.trim().toLowerCase() as (typeof LEVELS)[number]);
  // Unknown: the default, said once, rather than everything down to debug.
  if (given < 0 && !toldUnknown.has(level)) {
    toldUnknown.add(level);
    console.error(`[duro] WARN DURO_LOG_LEVEL=${JSON.stringify(level)} is not one of ${LEVELS.join(", ")}; logging warnings and errors.`);
  }
  const min = given < 0 ? LEVELS.indexOf("warn") : given;
  const line = (lvl: (typeof LEVELS)[number]) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS.indexOf(lvl) < min) return;
    const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : "";
    console.error(`[duro] ${lvl.toUpperCase()} ${message}${extra}`);
  };
  return { debug: line("debug"), info: line("info"), warn: line("warn"), error: line("error") };
}

/** A logger whose lines carry `workflowId` and `stepId` when called inside a workflow. */
export function contextLogger(base: Logger): Logger {
  const withContext = (fields?: Record<string, unknown>) => {
    const ctx = als.getStore();
    if (!ctx) return fields;
    return { workflowId: ctx.run.workflowId, ...(ctx.step ? { stepId: ctx.step.stepId } : {}), ...fields };
  };
  return {
    debug: (m, f) => base.debug(m, withContext(f)),
    info: (m, f) => base.info(m, withContext(f)),
    warn: (m, f) => base.warn(m, withContext(f)),
    error: (m, f) => base.error(m, withContext(f)),
  };
}
