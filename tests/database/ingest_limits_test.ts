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

/** The function's key limit settings (p_limits) as a property draws them. */
function keyDefaults(
  c: { requestsPerSecond: number; requestsBurst: number; readingsPerSecond: number; readingsBurst: number },
) {
  return {
    requests_per_second: c.requestsPerSecond,
    requests_burst: c.requestsBurst,
    readings_per_second: c.readingsPerSecond,
    readings_burst: c.readingsBurst,
    max_readings: 1,
  };
}

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

Deno.test("a batch over its workspace's readings rate: the key's refusal and the workspace's in one call, the rest stored", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = { datasourceId: a.datasourceId, keyId: (await createKey(db.sql, a.datasourceId)).keyId };
  await db.sql`update public.datasource_api_keys set rate_limit_per_second = 1, rate_limit_burst = 2
    where id = ${a.keyId}`;
  await db.sql`insert into public.workspace_limits (workspace_id, readings_per_second, readings_burst)
    values (${a.workspaceId}, 1, 3)`;
  // Key a's third request is over its key (burst 2); of the five left, the workspace (burst 3) admits three, in order.
  const requests = [...batch(a.datasourceId, a.keyId, 3), ...batch(b.datasourceId, b.keyId, 3)];
  const [row] = await asRole(
    db.sql,
    { role: "service_role" },
    (tx) => tx`select public.ingest_write_batch(${tx.json(requests)}, ${tx.json(NO_KEY_LIMITS)}) as r`,
  );
  const results = row!.r.results as { code?: string; limit?: { limit: string } }[];
  assert.deepEqual(
    results.map((r) => r.limit?.limit ?? "stored"),
    ["stored", "stored", "key_requests", "stored", "workspace_readings", "workspace_readings"],
  );
  const [history] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(history!.n, 3, "the three admitted requests' readings, once each");
  const [usage] = await db.sql`select day_readings::int as n from public.workspace_usage
    where workspace_id = ${a.workspaceId}`;
  assert.equal(usage!.n, 3, "the workspace counts what it admitted");
  const throttled = await db.sql`select limit_name, refused from public.ingest_throttles order by 1`;
  assert.deepEqual(throttled.map((t) => ({ ...t })), [
    { limit_name: "key_requests", refused: 1 },
    { limit_name: "workspace_readings", refused: 2 },
  ]);
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

Deno.test("property: a call of one payload takes its key's limits as the general stage does (same decision, same bucket)", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const nullable = (arb: fc.Arbitrary<number>) => fc.option(arb, { nil: null });
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        ownRate: nullable(fc.integer({ min: 1, max: 20 })),
        ownBurst: nullable(fc.integer({ min: 1, max: 20 })),
        requestsPerSecond: fc.integer({ min: 0, max: 20 }),
        requestsBurst: fc.integer({ min: 1, max: 20 }),
        readingsPerSecond: fc.integer({ min: 0, max: 50 }),
        readingsBurst: fc.integer({ min: 1, max: 50 }),
        workspaceLimited: fc.boolean(),
        // The buckets' theoretical arrival times, in seconds from now (null: never used).
        requestsTat: nullable(fc.double({ min: -5, max: 5, noNaN: true })),
        readingsTat: nullable(fc.double({ min: -5, max: 5, noNaN: true })),
      }),
      async (c) => {
        const defaults = { ...keyDefaults(c), workspace_readings_per_day: c.workspaceLimited ? 1_000_000 : 0 };
        /** The stage's answer and the bucket after it, in a transaction rolled back. */
        const take = (fast: boolean) =>
          db.sql.begin(async (tx) => {
            await tx`update public.datasource_api_keys set rate_limit_per_second = ${c.ownRate},
              rate_limit_burst = ${c.ownBurst} where id = ${s.keyId}`;
            await tx`update private.key_buckets set
              requests_tat = extract(epoch from clock_timestamp()) + ${c.requestsTat}::float8,
              readings_tat = extract(epoch from clock_timestamp()) + ${c.readingsTat}::float8
              where key_id = ${s.keyId}`;
            const [row] = fast
              ? await tx`select private.ingest_take_key_limit(${s.keyId}, ${tx.json(defaults)}) as r`
              : await tx`select private.ingest_take_limits(${tx.json([{ key_id: s.keyId }])}, false,
                  ${tx.json(defaults)}, 'keys') as r`;
            const [bucket] = await tx`select requests_tat - extract(epoch from clock_timestamp()) as r,
              readings_tat - extract(epoch from clock_timestamp()) as d from private.key_buckets where key_id = ${s.keyId}`;
            throw Object.assign(new Error("rollback"), { answer: row!.r, bucket });
          }).catch((e) => ({ answer: e.answer, bucket: e.bucket }));
        const general = await take(false);
        const fast = await take(true);
        // `workspaces`: whether the workspaces stage is needed (the general stage says true, this one gives the share).
        const decision = (a: { refused?: Record<string, { limit: string }>; workspaces?: unknown } | null) =>
          a && { limit: a.refused?.["1"]?.limit ?? null, workspaces: Boolean(a.workspaces) };
        assert.deepEqual(decision(fast.answer), decision(general.answer), JSON.stringify({ fast, general }));
        for (const field of ["r", "d"] as const) {
          const [f, g] = [fast.bucket?.[field], general.bucket?.[field]];
          assert.ok(f === g || Math.abs(f - g) < 0.05, `bucket ${field}: ${f} against ${g}`);
        }
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("property: a batch takes its keys' limits in its own pass as the general stage does (same refusals, same buckets)", async () => {
  await using db = await createTestDatabase();
  const first = await seedWorkspace(db.sql);
  const second = await seedWorkspace(db.sql);
  // Three keys: two of one datasource, one of another workspace's.
  const keys = [
    { datasourceId: first.datasourceId, keyId: first.keyId },
    { datasourceId: first.datasourceId, keyId: (await createKey(db.sql, first.datasourceId)).keyId },
    { datasourceId: second.datasourceId, keyId: second.keyId },
  ];
  const nullable = (arb: fc.Arbitrary<number>) => fc.option(arb, { nil: null });
  const keyState = fc.record({
    ownRate: nullable(fc.integer({ min: 1, max: 6 })),
    ownBurst: nullable(fc.integer({ min: 1, max: 6 })),
    // The buckets' theoretical arrival times, in seconds from now (null: never used).
    requestsTat: nullable(fc.double({ min: -2, max: 3, noNaN: true })),
    readingsTat: nullable(fc.double({ min: -2, max: 3, noNaN: true })),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        keys: fc.tuple(keyState, keyState, keyState),
        requestsPerSecond: fc.integer({ min: 0, max: 6 }),
        requestsBurst: fc.integer({ min: 1, max: 6 }),
        readingsPerSecond: fc.integer({ min: 0, max: 12 }),
        readingsBurst: fc.integer({ min: 1, max: 12 }),
        // Which key sends each request of the batch, in order.
        senders: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 12 }),
      }),
      async (c) => {
        const defaults = keyDefaults(c);
        const requests = c.senders.map((k, i) => ({
          datasource_id: keys[k]!.datasourceId,
          key_id: keys[k]!.keyId,
          values: { temperature: i },
          observed_at: null,
        }));
        /** The refused requests (1-based index: limit) and the buckets after, in a transaction rolled back. */
        const take = (fused: boolean) =>
          db.sql.begin(async (tx) => {
            for (const [k, state] of c.keys.entries()) {
              await tx`update public.datasource_api_keys set rate_limit_per_second = ${state.ownRate},
                rate_limit_burst = ${state.ownBurst} where id = ${keys[k]!.keyId}`;
              await tx`update private.key_buckets set
                requests_tat = extract(epoch from clock_timestamp()) + ${state.requestsTat}::float8,
                readings_tat = extract(epoch from clock_timestamp()) + ${state.readingsTat}::float8
                where key_id = ${keys[k]!.keyId}`;
            }
            const refused: Record<string, string> = {};
            if (fused) {
              const [row] = await tx`select public.ingest_write_batch(${tx.json(requests)}, ${tx.json(defaults)}) as r`;
              const results = (row!.r.results ?? []) as { code?: string; limit?: { limit: string } }[];
              results.forEach((result, i) => {
                if (result.code === "PT429") refused[String(i + 1)] = result.limit!.limit;
              });
            } else {
              const [row] = await tx`select private.ingest_take_limits(${tx.json(requests)}, false,
                ${tx.json(defaults)}, 'keys') as r`;
              for (const [i, refusal] of Object.entries(row!.r?.refused ?? {})) {
                refused[i] = (refusal as { limit: string }).limit;
              }
            }
            const buckets = await tx`select key_id, requests_tat - extract(epoch from clock_timestamp()) as r,
              readings_tat - extract(epoch from clock_timestamp()) as d from private.key_buckets order by key_id`;
            throw Object.assign(new Error("rollback"), { refused, buckets });
          }).catch((e) => {
            if (!e.refused) throw e;
            return { refused: e.refused as Record<string, string>, buckets: e.buckets as Record<string, number>[] };
          });
        const general = await take(false);
        const fused = await take(true);
        assert.deepEqual(fused.refused, general.refused, JSON.stringify({ c, fused, general }));
        for (const [i, bucket] of fused.buckets.entries()) {
          for (const field of ["r", "d"] as const) {
            const [f, g] = [bucket[field], general.buckets[i]![field]];
            assert.ok(f === g || Math.abs(f! - g!) < 0.05, `bucket ${field}: ${f} against ${g}`);
          }
        }
      },
    ),
    { numRuns: 120 },
  );
});

Deno.test("a key whose burst is one request admits its first request, whatever the rounding of epoch seconds", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const defaults = { requests_per_second: 5, requests_burst: 1, readings_per_second: 0, max_readings: 1 };
  const refused: unknown[] = [];
  for (let i = 0; i < 40; i++) {
    // A fresh bucket each time: the request fills the burst exactly (1/5 s ahead of now, the most allowed).
    await db.sql`update private.key_buckets set requests_tat = null, readings_tat = null where key_id = ${s.keyId}`;
    const [general] = await db.sql`select private.ingest_take_limits(${db.sql.json([{ key_id: s.keyId }])}, false,
      ${db.sql.json(defaults)}, 'keys') as r`;
    await db.sql`update private.key_buckets set requests_tat = null, readings_tat = null where key_id = ${s.keyId}`;
    const [fast] = await db.sql`select private.ingest_take_key_limit(${s.keyId}, ${db.sql.json(defaults)}) as r`;
    if (general!.r !== null || fast!.r !== null) refused.push({ general: general!.r, fast: fast!.r });
  }
  assert.deepEqual(refused, [], "refused with a full bucket");
});

/**
 * Key limits that lend leases of 10: 10 s of 2 requests/s is 20, and 1% of the burst 10. A slow rate: the bucket
 * refills by one request in half a second, far longer than a test takes to read it.
 */
const LEASING = {
  requests_per_second: 2,
  requests_burst: 1000,
  readings_per_second: 0,
  max_readings: 1,
  key_lease_seconds: 10,
};

/** ingest_write_batch with the limits `limits`, as the function calls it: its answer. */
async function writeBatch(sql: postgres.Sql, requests: unknown[], limits: unknown) {
  const [row] = await asRole(
    sql,
    { role: "service_role" },
    (tx) =>
      tx`select public.ingest_write_batch(${tx.json(requests as postgres.JSONValue)}, ${
        tx.json(limits as postgres.JSONValue)
      }) as r`,
  );
  return row!.r as { received_at: string; results?: { code?: string }[]; leases?: Record<string, number> };
}

/** Requests taken from a key's requests bucket: its theoretical arrival time, from now, times the rate. */
async function requestsTaken(sql: postgres.Sql, keyId: string, rate: number): Promise<number> {
  const [row] = await sql`select (requests_tat - extract(epoch from clock_timestamp())) * ${rate}::float8 as n
    from private.key_buckets where key_id = ${keyId}`;
  return row!.n as number;
}

Deno.test("a batch lends a lease on a key with high limits, and requests sent leased skip the key's buckets", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  const { key_lease_seconds: _, ...limits } = LEASING;

  const lent = await writeBatch(db.sql, batch(s.datasourceId, s.keyId, 3), LEASING);
  assert.equal(lent.results, undefined, "every request stored");
  assert.deepEqual(lent.leases, { [s.keyId]: 10 });
  const taken = await requestsTaken(db.sql, s.keyId, 2);
  assert.ok(taken > 12.5 && taken <= 13, `the share and the lease taken: ${taken}`);

  const leased = batch(s.datasourceId, s.keyId, 4).map((r) => ({ leased: true, ...r }));
  const spent = await writeBatch(db.sql, leased, LEASING);
  assert.equal(spent.results, undefined, "every request stored");
  assert.equal(spent.leases, undefined, "nothing taken, nothing lent");
  assert.ok(await requestsTaken(db.sql, s.keyId, 2) < taken, "the bucket only refilled");
  const [stored] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(stored!.n, 7, "both batches written");

  // Without key_lease_seconds (a caller that spends no lease), or with limits too low to lend from: no lease.
  assert.equal((await writeBatch(db.sql, batch(s.datasourceId, s.keyId, 3), limits)).leases, undefined);
  const low = { requests_per_second: 2, requests_burst: 200, readings_per_second: 0, max_readings: 1 };
  assert.equal(
    (await writeBatch(db.sql, batch(s.datasourceId, s.keyId, 3), { ...low, key_lease_seconds: 10 })).leases,
    undefined,
  );
});

Deno.test("a lease is lent only when it fits in the buckets after the batch's share", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // 12 requests left in the bucket: the share (3) fits, the share and a lease (13) do not.
  await db.sql`update private.key_buckets set requests_tat = extract(epoch from clock_timestamp()) + 988 / 2.0
    where key_id = ${s.keyId}`;
  const answer = await writeBatch(db.sql, batch(s.datasourceId, s.keyId, 3), LEASING);
  assert.equal(answer.results, undefined, "every request stored");
  assert.equal(answer.leases, undefined);
  const taken = await requestsTaken(db.sql, s.keyId, 2);
  assert.ok(taken > 990.5 && taken <= 991, `the share alone taken: ${taken}`);
});

Deno.test("a batch its workspace refuses in part keeps the lease its key lent, and a key's share that does not fit lends none", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`insert into public.workspace_limits (workspace_id, readings_per_day) values (${s.workspaceId}, 2)`;
  // The workspace refuses the third request: the write is undone and made again with two, which lend the lease.
  const partly = await writeBatch(db.sql, batch(s.datasourceId, s.keyId, 3), LEASING);
  assert.deepEqual(partly.results?.map((r) => r.code ?? "stored"), ["stored", "stored", "PT429"]);
  assert.deepEqual(partly.leases, { [s.keyId]: 10 });
  const taken = await requestsTaken(db.sql, s.keyId, 2);
  assert.ok(taken > 11.5 && taken <= 12, `two requests and the lease taken: ${taken}`);

  // A share over the key's bucket: refused in part by the key, nothing lent.
  const other = await seedWorkspace(db.sql);
  await db.sql`update private.key_buckets set requests_tat = extract(epoch from clock_timestamp()) + 998 / 2.0
    where key_id = ${other.keyId}`;
  const over = await writeBatch(db.sql, batch(other.datasourceId, other.keyId, 3), LEASING);
  assert.deepEqual(over.results?.map((r) => r.code ?? "stored"), ["stored", "stored", "PT429"]);
  assert.equal(over.leases, undefined);
});
