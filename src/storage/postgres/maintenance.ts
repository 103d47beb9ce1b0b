/**
 * Table housekeeping for a server that does none. With autovacuum off (as on some development
 * and CI servers) nothing refreshes the planner's statistics or clears dead rows: a prepared
 * statement planned while the tables were small keeps reading them whole as they grow (a
 * mixed workload fell from 2,400 to 1,100 workflows/s in 2.5 minutes), and they bloat. An
 * executor then does autovacuum's job on duro's own tables, at autovacuum's default thresholds:
 * ANALYZE once 50 + 10 % of a table's rows changed, VACUUM (which analyzes too) once 50 + 20 %
 * are dead. One executor at a time; nothing at all while autovacuum is on.
 */
import { quoteIdent, type PgConnection } from "./connection.js";

/** Taken (not waited for) by the executor doing the housekeeping: "duro" + 1. */
const MAINTENANCE_LOCK = 0x64757270;

export async function maintain(conn: PgConnection): Promise<string[]> {
  return conn.run(
    async (client) => {
      const sql = "SELECT CASE WHEN current_setting('autovacuum') = 'off' THEN pg_try_advisory_lock($1) END AS locked";
      if ((await client.query(sql, [MAINTENANCE_LOCK])).rows[0].locked !== true) return [];
      const done: string[] = [];
      try {
        const { rows } = await client.query(
          "SELECT relname, n_live_tup, n_dead_tup, n_mod_since_analyze FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY relname",
          [conn.schemaName],
        );
        for (const { relname, n_live_tup, n_dead_tup, n_mod_since_analyze } of rows) {
          const live = Number(n_live_tup);
          const table = `${conn.schema}.${quoteIdent(relname)}`;
          const command = Number(n_dead_tup) > 50 + 0.2 * live ? "VACUUM (ANALYZE)" : Number(n_mod_since_analyze) > 50 + 0.1 * live ? "ANALYZE" : null;
          if (!command) continue;
          await client.query(`${command} ${table}`);
          done.push(`${command} ${relname}`);
        }
      } finally {
        await client.query("SELECT pg_advisory_unlock($1)", [MAINTENANCE_LOCK]);
      }
      return done;
    },
    undefined,
    Infinity, // a large table's VACUUM may take long
  );
}
