// SCRATCH. Delete when done.
import { expect, it } from "vitest";
import { PostgresStore } from "../src/storage/postgres/store.js";
import { DatabaseError } from "../src/errors.js";
it("gives up after the retry window", async () => {
  const s = new PostgresStore("postgres://u:sekret@127.0.0.1:1/db");
  const t = Date.now();
  const err = await s.getEvent("a", "b").catch((e) => e);
  console.log("WINDOW", Date.now() - t, err.name, err.message);
  expect(err).toBeInstanceOf(DatabaseError);
  await s.close();
}, 90_000);
