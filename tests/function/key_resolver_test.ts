/** The key cache in front of ingest_resolve_key, on the real database. */
import assert from "node:assert/strict";
import { hashApiKey } from "../../supabase/functions/ingest-data/api_key.ts";
import { createKeyResolver, LookupLimitedError } from "../../supabase/functions/ingest-data/key_resolver.ts";
import { createPostgresStore } from "../../supabase/functions/ingest-data/postgres_store.ts";
import type { Store } from "../../supabase/functions/ingest-data/store.ts";
import { createTestDatabase } from "../support/database.ts";
import { createKey, seedWorkspace } from "../support/seed.ts";

/** The real postgres store, counting its resolveKey calls. */
function countingStore(url: string): Store & { lookups: number } {
  const store = createPostgresStore(url, { poolSize: 2, statementTimeoutMs: 5000 });
  const counted = {
    lookups: 0,
    resolveKey(hash: string) {
      counted.lookups++;
      return store.resolveKey(hash);
    },
    write: store.write,
    usage: store.usage,
    flushBroadcasts: store.flushBroadcasts,
    close: store.close,
  };
  return counted;
}

Deno.test("a known key is cached for the TTL, an unknown one for the negative TTL; concurrent misses share one lookup", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const store = countingStore(db.url);
  let clock = 0;
  const resolve = createKeyResolver(store, { ttlMs: 1000, negativeTtlMs: 100, now: () => clock });
  try {
    const hash = hashApiKey(s.apiKey);
    const [a, b] = await Promise.all([resolve(hash), resolve(hash)]);
    assert.equal(a?.key_id, s.keyId);
    assert.equal(b, a);
    assert.equal(store.lookups, 1);
    clock = 999;
    await resolve(hash);
    assert.equal(store.lookups, 1, "served from cache within the TTL");
    clock = 1000;
    await resolve(hash);
    assert.equal(store.lookups, 2, "looked up again after the TTL");

    const unknown = "f".repeat(64);
    assert.equal(await resolve(unknown), null);
    clock = 1099;
    assert.equal(await resolve(unknown), null);
    assert.equal(store.lookups, 3);
    clock = 1100;
    await resolve(unknown);
    assert.equal(store.lookups, 4);
  } finally {
    await store.close();
  }
});

Deno.test("unknown keys have a cache of their own: a flood of them never evicts a known key", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const store = countingStore(db.url);
  const resolve = createKeyResolver(store, { ttlMs: 60_000, negativeTtlMs: 60_000, maxEntries: 4 });
  try {
    const hash = hashApiKey(s.apiKey);
    assert.equal((await resolve(hash))?.key_id, s.keyId);
    for (let i = 0; i < 20; i++) assert.equal(await resolve(i.toString(16).padStart(64, "0")), null);
    assert.equal(store.lookups, 21);
    assert.equal((await resolve(hash))?.key_id, s.keyId);
    assert.equal(store.lookups, 21, "the known key is still cached");
  } finally {
    await store.close();
  }
});

Deno.test("keys never seen valid draw lookups from a budget; known keys, even past their TTL, do not", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await createKey(db.sql, s.datasourceId);
  const store = countingStore(db.url);
  let clock = 0;
  const resolve = createKeyResolver(store, {
    ttlMs: 1000,
    negativeTtlMs: 100,
    lookups: { perSecond: 2, burst: 3 },
    now: () => clock,
  });
  try {
    const hash = hashApiKey(s.apiKey);
    assert.equal((await resolve(hash))?.key_id, s.keyId);
    const outcomes = [];
    for (let i = 0; i < 50; i++) {
      outcomes.push(await resolve(i.toString(16).padStart(64, "0")).catch((e) => e));
    }
    assert.equal(outcomes.filter((o) => o === null).length, 2, "the burst's two lookups left");
    assert.ok(outcomes.slice(2).every((o) => o instanceof LookupLimitedError && o.retryAfterS === 1));
    assert.equal(store.lookups, 3);
    // Within its TTL the known key is served from the cache; past it, it is looked up although the budget is spent.
    assert.equal((await resolve(hash))?.key_id, s.keyId);
    clock = 1000; // two lookups refilled, and spent
    assert.equal(await resolve("d".repeat(64)), null);
    assert.equal(await resolve("e".repeat(64)), null);
    await assert.rejects(resolve("f".repeat(64)), LookupLimitedError);
    assert.equal((await resolve(hash))?.key_id, s.keyId);
    assert.equal(store.lookups, 6);
    // A valid key this instance has never seen waits for the budget like any other.
    await assert.rejects(resolve(hashApiKey(other.apiKey)), LookupLimitedError);
    clock = 1500;
    assert.equal((await resolve(hashApiKey(other.apiKey)))?.key_id, other.keyId);
    assert.equal(store.lookups, 7);
  } finally {
    await store.close();
  }
});
