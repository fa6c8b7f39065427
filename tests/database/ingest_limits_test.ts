/**
 * The limits the write functions enforce (migration ..._limits.sql),
 * on the SQL functions themselves: quotas under concurrent batches, a batch
 * whose over-limit requests alone are refused, and no limit when none is set.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import postgres from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { asRole, createKey, seedWorkspace } from "../support/seed.ts";

const NO_KEY_LIMITS = { requests_per_second: 0, readings_per_second: 0, max_readings: 1 };

/** A batch of `count` single payloads for ingest_write_batch. */
function batch(datasourceId: string, keyId: string, count: number) {
  return Array.from({ length: count }, (_, i) => ({
    datasource_id: datasourceId,
    key_id: keyId,
    values: { temperature: i },
    observed_at: null,
  }));
}

Deno.test("property: concurrent batches never store a reading beyond the workspace's daily quota", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  const { keyId: otherKey } = await createKey(db.sql, s.datasourceId);
  const clients = Array.from({ length: 4 }, () => postgres(db.url, { max: 1, onnotice: () => {} }));
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 8 }),
        async (quota, calls) => {
          await db.sql`delete from public.datasource_readings`;
          await db.sql`update public.workspace_usage set day_readings = 0, month_readings = 0`;
          await db
            .sql`insert into public.workspace_limits (workspace_id, readings_per_day) values (${s.workspaceId}, ${quota})
            on conflict (workspace_id) do update set readings_per_day = excluded.readings_per_day`;
          // Each call on a client of its own, all at once: batches, readings calls, either key.
          const answers = await Promise.all(calls.map(([count, readings, other], i) => {
            const sql = clients[i % clients.length]!;
            const key = other ? otherKey : s.keyId;
            return asRole(
              sql,
              { role: "service_role" },
              (tx) =>
                readings
                  ? tx`select public.ingest_write_readings(${
                    tx.json([{
                      datasource_id: s.datasourceId,
                      key_id: key,
                      readings: Array.from({ length: count }, (_, n) => ({ t: null, v: { temperature: n } })),
                    }])
                  }, ${tx.json(NO_KEY_LIMITS)}) as r`
                  : tx`select public.ingest_write_batch(${tx.json(batch(s.datasourceId, key, count))}, ${
                    tx.json(NO_KEY_LIMITS)
                  }) as r`,
            ).then(([row]) => ({ readings, count, r: row!.r }));
          }));
          const accepted = answers.reduce((sum, { readings, count, r }) => {
            const results = (r.results ?? []) as { code?: string }[];
            if (readings) return sum + (results[0]?.code ? 0 : count);
            return sum + (r.results ? results.filter((x) => !x.code).length : count);
          }, 0);
          const [stored] = await db.sql`select count(*)::int as n from public.datasource_readings`;
          const [usage] = await db.sql`select day_readings::int as n from public.workspace_usage`;
          const asked = calls.reduce((sum, [count]) => sum + count, 0);
          assert.ok(stored!.n <= quota, `${stored!.n} stored over a quota of ${quota}`);
          assert.equal(stored!.n, accepted, "every accepted reading is stored, no refused one");
          assert.equal(usage!.n, stored!.n, "the day's counter is what was stored");
          // Refusals only once the quota is (nearly) used: a request is refused only when it does not fit.
          if (asked <= quota) assert.equal(stored!.n, asked);
        },
      ),
      { numRuns: 25 },
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
});

Deno.test("a batch refuses its requests over a key's limit alone (PT429 with the limit) and stores the rest", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await seedWorkspace(db.sql);
  const limits = { requests_per_second: 1, requests_burst: 2, readings_per_second: 0, max_readings: 1 };
  // The other key first: the refused request's index in the call is not its index among its key's requests.
  const requests = [
    ...batch(other.datasourceId, other.keyId, 1),
    ...batch(s.datasourceId, s.keyId, 3),
  ];
  const [row] = await asRole(
    db.sql,
    { role: "service_role" },
    (tx) => tx`select public.ingest_write_batch(${tx.json(requests)}, ${tx.json(limits)}) as r`,
  );
  const results = row!.r.results as { code?: string; limit?: Record<string, unknown> }[];
  assert.deepEqual(results.map((r) => r.code ?? "stored"), ["stored", "stored", "stored", "PT429"]);
  assert.deepEqual(results[3]!.limit, {
    code: "rate_limited",
    limit: "key_requests",
    limit_value: 2,
    per_second: 1,
    remaining: 0,
    reset_s: 2,
    retry_after_s: 1,
  });
  const stored = await db.sql`select datasource_id, value from public.datasource_values order by 1`;
  assert.equal(stored.length, 2);
  const [throttled] = await db.sql`select datasource_id, limit_name, refused from public.ingest_throttles`;
  assert.deepEqual({ ...throttled }, { datasource_id: s.datasourceId, limit_name: "key_requests", refused: 1 });
});

Deno.test("no limit set: nothing is locked or counted, and the answer is the write function's own", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const limits = { requests_per_second: 0, readings_per_second: 0, max_readings: 1 };
  const [row] = await asRole(
    db.sql,
    { role: "service_role" },
    (tx) =>
      tx`select public.ingest_write_batch(${tx.json(batch(s.datasourceId, s.keyId, 3))}, ${tx.json(limits)}) as r`,
  );
  assert.deepEqual(Object.keys(row!.r), ["received_at"], "the usual answer: every request stored now");
  const [usage] = await db.sql`select day_readings::int as n, readings_tat from public.workspace_usage`;
  assert.deepEqual({ ...usage }, { n: 0, readings_tat: null });
});
