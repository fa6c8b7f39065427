/** Payload limits and per-key rate limiting, each with a clear error and no write. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";
import { seedWorkspace } from "../support/seed.ts";

Deno.test("each payload limit is a 400 naming the limit; nothing written", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, {
    widgets: [
      { name: "t", widget_type: "SingleData", data_key: "temperature", settings: {} },
      { name: "h", widget_type: "SingleData", data_key: "humidity", settings: {} },
      { name: "p", widget_type: "SingleData", data_key: "pressure", settings: {} },
      { name: "c", widget_type: "LineChart", data_key: "trend", settings: { labelsKey: "t", valuesKey: "v" } },
    ],
  });
  await using fn = createTestFunction(db.url, {
    INGEST_MAX_DATA_KEYS: "2",
    INGEST_MAX_ARRAY_LENGTH: "3",
    INGEST_MAX_STRING_LENGTH: "5",
    INGEST_MAX_DEPTH: "4",
  });
  const cases: [string, string, string, RegExp][] = [
    ["DataKeys", JSON.stringify({ temperature: 1, humidity: 2, pressure: 3 }), "limit_exceeded", /at most 2 DataKeys/],
    [
      "array length",
      JSON.stringify({ trend: { t: [1, 2, 3, 4], v: [1, 2, 3, 4] } }),
      "invalid_payload",
      /at most 3 items/,
    ],
    ["string length", JSON.stringify({ temperature: "abcdef" }), "invalid_payload", /at most 5 characters/],
    ["label length", JSON.stringify({ trend: { t: ["abcdef"], v: [1] } }), "invalid_payload", /at most 5 characters/],
    ["nesting", '{"temperature": [[[[[1]]]]]}', "limit_exceeded", /nests deeper than 4 levels/],
  ];
  for (const [label, body, code, message] of cases) {
    const res = await fn.handle(postRequest(body, { key: s.apiKey }));
    const json = await res.json();
    assert.equal(res.status, 400, label);
    assert.equal(json.code, code, label);
    assert.match(json.message, message, label);
    assert.ok(json.issues.length > 0, label);
  }
  const ok = await fn.handle(
    postRequest({ temperature: "abcde", trend: { t: ["a", "b", "c"], v: [1, 2, 3] } }, { key: s.apiKey }),
  );
  assert.equal(ok.status, 200, "at the limits is fine");
  await ok.body?.cancel();
  const [count] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(count!.n, 2);
});

Deno.test("brackets inside strings do not count as nesting", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_MAX_DEPTH: "3" });
  const res = await fn.handle(postRequest({ temperature: '[[[[{{{{"\\' }, { key: s.apiKey }));
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("rate limit: 429 with Retry-After and X-RateLimit-* once the key's bucket is empty", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_RATE_LIMIT_PER_SECOND: "1", INGEST_RATE_LIMIT_BURST: "3" });
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 5; i++) {
    last = await fn.handle(postRequest({ temperature: i }, { key: s.apiKey }));
    statuses.push(last.status);
    if (i === 0) {
      assert.equal(last.headers.get("X-RateLimit-Limit"), "3");
      assert.equal(last.headers.get("X-RateLimit-Remaining"), "2");
    }
    if (i < 4) await last.body?.cancel();
  }
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  assert.equal(last!.headers.get("Retry-After"), "1");
  assert.equal(last!.headers.get("X-RateLimit-Remaining"), "0");
  assert.ok(Number(last!.headers.get("X-RateLimit-Reset")) >= 1);
  assert.equal((await last!.json()).code, "rate_limited");
  const [count] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(count!.n, 3, "refused requests write nothing");
});

Deno.test("rate limit: a key's own limit in the database overrides the default; keys do not share buckets", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await seedWorkspace(db.sql);
  await db
    .sql`update public.datasource_api_keys set rate_limit_per_second = 1, rate_limit_burst = 1 where id = ${s.keyId}`;
  await using fn = createTestFunction(db.url);
  const first = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  const second = await fn.handle(postRequest({ temperature: 2 }, { key: s.apiKey }));
  const otherKey = await fn.handle(postRequest({ temperature: 3 }, { key: other.apiKey }));
  assert.deepEqual([first.status, second.status, otherKey.status], [200, 429, 200]);
  assert.equal(otherKey.headers.get("X-RateLimit-Limit"), "200");
  for (const r of [first, second, otherKey]) await r.body?.cancel();
});

Deno.test("at most 100 issues in any response: a 1 MB payload of wrong values, 300 bad readings", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const wrong = Array(10_000).fill("not a number, and a long one".repeat(1));
  const big = JSON.stringify({ production_output: { machines: Array(10_000).fill(true), units_per_hour: wrong } });
  const payloads: [string, string][] = [
    ["1 MB payload", big.padEnd(1000 * 1024 - 1, " ")],
    [
      "300 readings",
      JSON.stringify(Array.from({ length: 300 }, () => ({ observed_at: "x", values: { temperature: [1] }, a: 1 }))),
    ],
  ];
  for (const [label, body] of payloads) {
    const started = performance.now();
    const res = await fn.handle(postRequest(body, { key: s.apiKey }));
    const json = await res.json();
    console.log(`${label}: ${body.length} bytes, answered in ${(performance.now() - started).toFixed(1)} ms`);
    assert.equal(res.status, 400, label);
    assert.equal(json.issues.length, 100, label);
    assert.match(json.message, /the list stops at 100, there may be more\)$/, label);
  }
});
