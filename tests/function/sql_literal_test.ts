/**
 * The store's SQL literals read back exactly as the text they quote, on a real
 * PostgreSQL, whatever standard_conforming_strings is: quotes and backslashes
 * cannot end the literal or change its content.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { sqlLiteral } from "../../supabase/functions/ingest-data/sql_literal.ts";
import { createTestDatabase } from "../support/database.ts";

Deno.test("sqlLiteral doubles backslashes and quotes inside E'…'", () => {
  assert.equal(sqlLiteral(""), "E''");
  assert.equal(sqlLiteral(`it's a \\"value\\"`), `E'it''s a \\\\"value\\\\"'`);
  assert.throws(() => sqlLiteral("a\0b"), /Cannot quote text for SQL: it contains a NUL character/);
});

Deno.test("sqlLiteral reads back as its text, with either standard_conforming_strings", async () => {
  await using db = await createTestDatabase({ migrations: false });
  // Texts the store quotes: JSON (escapes included), ids, timestamps; and anything else without NUL.
  const text = fc.oneof(
    fc.json(),
    fc.string({ unit: "binary" }),
    fc.constantFrom("'", "\\", "\\'", "''; drop table x; --", "E'\\x00'", "\\\\'"),
  ).filter((s) => !s.includes("\0") && s.isWellFormed());
  const connection = await db.sql.reserve();
  try {
    for (const conforming of ["on", "off"]) {
      await connection.unsafe(`set standard_conforming_strings = ${conforming}`).simple();
      await fc.assert(
        fc.asyncProperty(text, async (s) => {
          const [row] = await connection.unsafe(`select ${sqlLiteral(s)} as t`).simple();
          assert.equal(row!.t, s);
        }),
        { numRuns: 200 },
      );
    }
  } finally {
    connection.release();
  }
});
