/** The key cache in front of ingest_resolve_key, on the real database. */
import assert from "node:assert/strict";
import { hashApiKey } from "../../supabase/functions/ingest-data/api_key.ts";
import { createKeyResolver } from "../../supabase/functions/ingest-data/key_resolver.ts";
import { createPostgresStore } from "../../supabase/functions/ingest-data/postgres_store.ts";
import type { Store } from "../../supabase/functions/ingest-data/store.ts";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";

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
