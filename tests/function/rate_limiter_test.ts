/** The token bucket. */
import assert from "node:assert/strict";
import { createRateLimiter } from "../../supabase/functions/ingest-data/rate_limiter.ts";

Deno.test("a bucket allows its burst, then refills at perSecond", () => {
  let clock = 0;
  const take = createRateLimiter({ now: () => clock });
  const limit = { perSecond: 2, burst: 4 };
  const allowed = Array.from({ length: 5 }, () => take("k", limit).allowed);
  assert.deepEqual(allowed, [true, true, true, true, false]);
  const refused = take("k", limit);
  assert.equal(refused.retryAfterS, 1);
  assert.equal(refused.resetS, 2);
  clock = 500; // one token back
  assert.equal(take("k", limit).allowed, true);
  assert.equal(take("k", limit).allowed, false);
  clock = 10_000; // full again, never above the burst
  assert.equal(take("k", limit).remaining, 3);
});

Deno.test("buckets are per key, and the least recently used are dropped past maxEntries", () => {
  const take = createRateLimiter({ now: () => 0, maxEntries: 2 });
  const limit = { perSecond: 1, burst: 1 };
  assert.equal(take("a", limit).allowed, true);
  assert.equal(take("b", limit).allowed, true);
  assert.equal(take("a", limit).allowed, false);
  take("c", limit); // evicts b, the least recently used
  assert.equal(take("b", limit).allowed, true, "b starts a new, full bucket");
});

Deno.test("a request may cost several tokens: taken all or none, Retry-After until they are there", () => {
  let t = 0;
  const take = createRateLimiter({ now: () => t });
  const limit = { perSecond: 10, burst: 50 };
  assert.equal(take("k", { ...limit, cost: 40 }).allowed, true);
  const refused = take("k", { ...limit, cost: 40 });
  assert.equal(refused.allowed, false);
  assert.equal(refused.remaining, 10);
  assert.equal(refused.retryAfterS, 3);
  t = 3000;
  assert.equal(take("k", { ...limit, cost: 40 }).allowed, true);
});
