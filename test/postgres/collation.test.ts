/**
 * A database whose default collation is linguistic (ICU here; en_US under libc alike), where
 * punctuation and case weigh less than letters and digits: listing by workflowIdPrefix must find
 * exactly the IDs that start with the prefix, as on a database that sorts by code point.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Duro, DuroClient } from "../../src/index.js";
import { POSTGRES_URL, quietLogger } from "../helpers.js";

const database = `duro_icu_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const url = (() => {
  const u = new URL(POSTGRES_URL);
  u.pathname = `/${database}`;
  return u.toString();
})();

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  await admin(`CREATE DATABASE "${database}" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
});
afterAll(async () => {
  await admin(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
});

it("workflowIdPrefix finds every ID that starts with it, and no other, under an ICU collation", async () => {
  const duro = new Duro({ databaseUrl: url, logger: quietLogger });
  const client = new DuroClient({ databaseUrl: url, logger: quietLogger });
  try {
    const wf = duro.registerWorkflow("w", async () => 1);
    await duro.launch();
    const ids = ["order-91", "order-92", "order-9", "order-10", "order9x", "zebra-1", "Zulu-1", "abc-1", "a_b", "a%b", "ab"];
    for (const id of ids) await (await duro.startWorkflow(wf.with({ workflowId: id }))).getResult();
    const expected = (prefixes: string[]) => ids.filter((id) => prefixes.some((p) => id.startsWith(p))).sort();
    const many = Array.from({ length: 4998 }, (_, i) => `none-${i}`);
    for (const prefixes of [["order-9"], ["z"], ["Z"], ["order-"], ["a_"], ["a%"], ["order-9", "zebra"], [""], [...many, "order-9", "ab"], ["order-", "order-9"]]) {
      const listed = (await duro.listWorkflows({ workflowIdPrefix: prefixes })).map((w) => w.workflowId).sort();
      expect(listed, JSON.stringify(prefixes)).toEqual(expected(prefixes));
      const byClient = (await client.listWorkflows({ workflowIdPrefix: prefixes })).map((w) => w.workflowId).sort();
      expect(byClient, JSON.stringify(prefixes)).toEqual(expected(prefixes));
    }
    expect(expected(["order-9"])).toEqual(["order-9", "order-91", "order-92"]); // the case that failed
  } finally {
    await client.close();
    await duro.shutdown();
  }
});
