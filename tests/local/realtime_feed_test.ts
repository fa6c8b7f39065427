/**
 * local/realtime_feed.ts: what realtime.send stores comes back once, after
 * commit, in commit order, never for a rolled-back transaction; in both
 * modes (notify for PostgreSQL, poll for PGlite's one-transaction-at-a-time).
 */
import assert from "node:assert/strict";
import { type DatabaseBroadcast, startRealtimeFeed } from "../../local/realtime_feed.ts";
import { createTestDatabase } from "../support/database.ts";

for (const mode of ["notify", "poll"] as const) {
  Deno.test(`realtime feed (${mode}): committed broadcasts once, in commit order; nothing rolled back`, async () => {
    await using db = await createTestDatabase();
    const send = (tx: typeof db.sql, n: number) =>
      tx`select realtime.send(jsonb_build_object('n', ${n}::int), 'values', 'datasource:t', true)`;
    await send(db.sql, 0); // before the feed starts: not delivered
    const got: DatabaseBroadcast[] = [];
    const feed = await startRealtimeFeed(db.sql, { mode, deliver: (m) => got.push(m), pollIntervalMs: 20 });
    try {
      await db.sql.begin(async (tx) => {
        await send(tx as never, 1);
        await send(tx as never, 2);
      });
      await assert.rejects(db.sql.begin(async (tx) => {
        await send(tx as never, 666);
        throw new Error("roll back");
      }));
      await send(db.sql, 3);
      for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100)); // nothing more comes
      assert.deepEqual(got.map((m) => JSON.parse(m.payload).n), [1, 2, 3]);
      for (const m of got) {
        assert.deepEqual([m.topic, m.event, m.private], ["datasource:t", "values", true]);
        assert.equal(JSON.parse(m.payload).id, m.id, "realtime.send puts the message id into the payload");
      }
    } finally {
      await feed.close();
    }
  });
}
