/** The leases the database lends an instance: spent once each, replaced, expired; and spent by the store. */
import assert from "node:assert/strict";
import { loadConfig } from "../../supabase/functions/ingest-data/config.ts";
import { createKeyLeases } from "../../supabase/functions/ingest-data/key_leases.ts";
import { createPostgresStore } from "../../supabase/functions/ingest-data/postgres_store.ts";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";

Deno.test("a lease is spent one request at a time, then gone; a key without one is never covered", () => {
  let clock = 0;
  const leases = createKeyLeases({ now: () => clock, ttlMs: 1000 });
  leases.grant({ a: 2 }, 0);
  assert.deepEqual([leases.take("a"), leases.take("a"), leases.take("a")], [true, true, false]);
  assert.equal(leases.take("b"), false);
  clock = 10;
  leases.grant({ a: 1, b: 0, c: -1, d: 1.5, e: "1" }, 10);
  assert.deepEqual(["a", "b", "c", "d", "e"].map((k) => leases.take(k)), [true, false, false, false, false]);
});

Deno.test("a lease expires its time to live after its call was sent, and a new one replaces the old", () => {
  let clock = 0;
  const leases = createKeyLeases({ now: () => clock, ttlMs: 1000 });
  leases.grant({ a: 5 }, 0);
  clock = 999;
  assert.equal(leases.take("a"), true);
  clock = 1000;
  assert.equal(leases.take("a"), false, "expired, 3 left unspent");
  leases.grant({ a: 5 }, 1000);
  leases.grant({ a: 1 }, 1000);
  assert.deepEqual([leases.take("a"), leases.take("a")], [true, false]);
  leases.grant(null, 1000);
  leases.grant([3], 1000);
  assert.equal(leases.take("0"), false, "an array is not a map of leases");
});

Deno.test("the store spends a lease in its next call of several, whose requests skip the key's bucket", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  // 2 requests/s (the bucket barely refills during the test), burst 1000; 10 s of the rate is 20 and 1% of the
  // burst 10: leases of 10.
  const { limits } = loadConfig({
    DATABASE_URL: db.url,
    INGEST_RATE_LIMIT_PER_SECOND: "2",
    INGEST_RATE_LIMIT_BURST: "1000",
    INGEST_RATE_LIMIT_READINGS_PER_SECOND: "0",
  }).store;
  const store = createPostgresStore(db.url, {
    poolSize: 2,
    statementTimeoutMs: 5000,
    writeConcurrency: 1,
    limits,
    keyLeaseSeconds: 10,
  });
  try {
    // Five at once: the first goes alone (no lease there), the four queued behind it in one call.
    const round = (from: number) =>
      Promise.all(
        Array.from({ length: 5 }, (_, i) =>
          store.write({ datasourceId: s.datasourceId, keyId: s.keyId, values: { temperature: from + i } })),
      );
    await round(0); // 1 + 4 taken, and a lease of 10 lent
    await round(5); // 1 taken; the four spend the lease
    const [row] = await db.sql`select count(*)::int as stored,
      (select (requests_tat - extract(epoch from clock_timestamp())) * 2 from private.key_buckets
        where key_id = ${s.keyId}) as taken
      from public.datasource_readings`;
    assert.equal(row!.stored, 10);
    // 16 without the refill: 1 + 4 + 10 + 1. Without the lease spent, 20 or more.
    assert.ok(row!.taken > 15 && row!.taken <= 16, `taken from the bucket: ${row!.taken}`);
  } finally {
    await store.close();
  }
});
