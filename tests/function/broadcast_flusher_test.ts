/**
 * broadcast_flusher.ts on the real postgres store: a commit the broadcast
 * budget held back goes out within its interval with no later write, and the
 * chain of flushes ends once nothing is pending.
 */
import assert from "node:assert/strict";
import { withBroadcastFlush } from "../../supabase/functions/ingest-data/broadcast_flusher.ts";
import { createPostgresStore } from "../../supabase/functions/ingest-data/postgres_store.ts";
import type { Store } from "../../supabase/functions/ingest-data/store.ts";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";

/** The postgres store, counting its flushes. */
function countingStore(url: string): Store & { flushes: number } {
  const store = createPostgresStore(url, { poolSize: 2, statementTimeoutMs: 5000 });
  const counted = {
    ...store,
    flushes: 0,
    flushBroadcasts() {
      counted.flushes++;
      return store.flushBroadcasts();
    },
  };
  return counted;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("a held commit is sent within its interval with no later write; the flushes stop once nothing is pending", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const inner = countingStore(db.url);
  const waited: Promise<unknown>[] = [];
  const store = withBroadcastFlush(inner, { waitUntil: (p) => waited.push(p) });
  const messages = async () =>
    (await db.sql`select count(*)::int as n from realtime.messages where event = 'values'`)[0]!.n;
  try {
    const write = (temperature: number) =>
      store.write({ datasourceId: s.datasourceId, keyId: s.keyId, values: { temperature } });
    await write(1);
    await write(2);
    assert.equal(await messages(), 1, "the second commit is held (4 broadcasts a second)");
    const held = performance.now();
    while (await messages() < 2) {
      assert.ok(performance.now() - held < 600, "sent within its interval (250 ms) and a little");
      await sleep(20);
    }
    // The runtime was asked to wait for the chain, which ends.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(waited),
      new Promise((_, reject) => timer = setTimeout(() => reject(new Error("the flushes never end")), 2000)),
    ]).finally(() => clearTimeout(timer));
    const flushes = inner.flushes;
    await sleep(300);
    assert.equal(inner.flushes, flushes, "no flush once nothing is pending");
    assert.ok(flushes <= 4, `${flushes} flushes`);
  } finally {
    await store.close();
  }
});
