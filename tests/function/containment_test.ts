/**
 * Containment: a request the database would refuse is refused alone. Hostile
 * requests, through the handler and straight into the store, share group
 * commits with valid requests of other datasources and workspaces; the valid
 * ones are always a 200 and stored, the hostile ones always a 4xx.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { createApiKey, createDatasource, createWorkspace } from "../../local/provisioning.ts";
import { StoreError, type WriteRequest } from "../../supabase/functions/ingest-data/store.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";

/** `?observed_at=` values the function must refuse: PostgreSQL cannot store them, or they are not times. */
const HOSTILE_TIMES = [
  "0000-01-01T00:00:00Z",
  "0000-12-31T23:59:59.999Z",
  "0000-01-01T00:00:00+01:00",
  "0001-01-01T00:00:00+01:00",
  "infinity",
  "-infinity",
  "+275760-09-13T00:00:00Z",
  "-271821-04-20T00:00:00Z",
];

/** Requests only a caller of the store could make: it must refuse them, never fail the batch. */
function hostileWrites(datasourceId: string, keyId: string): WriteRequest[] {
  return [
    { datasourceId, keyId: "not-a-uuid", values: { temperature: 1 } },
    { datasourceId: "x", keyId, values: { temperature: 1 } },
    { datasourceId, keyId, values: 42 as never },
    { datasourceId, keyId, values: [1] as never },
    { datasourceId, keyId, values: {} },
    { datasourceId, keyId, values: { temperature: 1 }, observedAt: "infinity" },
    { datasourceId, keyId, values: { temperature: 1 }, observedAt: "0000-01-01T00:00:00Z" },
    { datasourceId, keyId, values: { temperature: 1 }, observedAt: "not a time" },
    { datasourceId, keyId, values: { temperature: 1 }, observedAt: "2026-02-30T00:00:00Z" },
    { datasourceId, keyId, values: { temperature: 1 }, observedAt: "-infinity" },
    // jsonb cannot hold these: the batch's own input fails to parse, and its requests are retried alone.
    { datasourceId, keyId, values: { temperature: "\u0000" } },
    { datasourceId, keyId, values: { temperature: "\ud800" } },
  ];
}

Deno.test("property: hostile requests never cost a valid request of another tenant its 200", async () => {
  await using db = await createTestDatabase();
  // One lane and no rate limit: concurrent requests end up in the same group commits.
  await using fn = createTestFunction(db.url, { INGEST_WRITE_CONCURRENCY: "1", INGEST_RATE_LIMIT_PER_SECOND: "0" });
  const tenants: { datasourceId: string; apiKey: string }[] = [];
  for (const name of ["A", "B", "C"]) {
    const datasourceId = await createDatasource(db.sql, await createWorkspace(db.sql, name));
    const { apiKey } = await createApiKey(db.sql, datasourceId);
    tenants.push({ datasourceId, apiKey });
  }
  const hostileId = await createDatasource(db.sql, await createWorkspace(db.sql, "Hostile"));
  const hostile = await createApiKey(db.sql, hostileId);
  const writes = hostileWrites(hostileId, hostile.keyId);
  let counter = 0;

  const requestArb = fc.oneof(
    fc.record({ kind: fc.constant("valid" as const), tenant: fc.nat({ max: tenants.length - 1 }) }),
    fc.record({ kind: fc.constant("http" as const), time: fc.constantFrom(...HOSTILE_TIMES) }),
    fc.record({ kind: fc.constant("store" as const), write: fc.nat({ max: writes.length - 1 }) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(requestArb, { minLength: 2, maxLength: 30 }), async (requests) => {
      const outcomes = await Promise.all(requests.map(async (r) => {
        if (r.kind === "valid") {
          const value = ++counter;
          const { datasourceId, apiKey } = tenants[r.tenant]!;
          const res = await fn.handle(postRequest({ temperature: value }, { key: apiKey }));
          return { r, status: res.status, body: await res.json(), datasourceId, value };
        }
        if (r.kind === "http") {
          const query = `?observed_at=${encodeURIComponent(r.time)}`;
          const res = await fn.handle(postRequest({ temperature: 1 }, { key: hostile.apiKey, query }));
          return { r, status: res.status, body: await res.json() };
        }
        const status = await fn.store.write(writes[r.write]!).then(
          () => 200,
          (e) => e instanceof StoreError && ["invalid", "unauthorized", "forbidden"].includes(e.kind) ? 400 : 500,
        );
        return { r, status, body: writes[r.write] };
      }));
      for (const o of outcomes) {
        if (o.r.kind === "valid") assert.equal(o.status, 200, JSON.stringify(o.body));
        else {assert.ok(
            o.status >= 400 && o.status < 500,
            `${JSON.stringify(o.r)}: ${o.status} ${JSON.stringify(o.body)}`,
          );}
      }
      for (const o of outcomes) {
        if (!("value" in o)) continue;
        const [row] = await db.sql`select count(*)::int as n from public.datasource_readings
          where datasource_id = ${o.datasourceId!} and value = ${db.sql.json(o.value!)}`;
        assert.equal(row!.n, 1, `valid request ${o.value} stored once`);
      }
    }),
    { numRuns: 30 },
  );
  const [row] = await db
    .sql`select count(*)::int as n from public.datasource_readings where datasource_id = ${hostileId}`;
  assert.equal(row!.n, 0, "nothing of the hostile requests was stored");
});

Deno.test("?observed_at= that PostgreSQL cannot store is a 400 naming the field, alone", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  const datasourceId = await createDatasource(db.sql, await createWorkspace(db.sql, "A"));
  const { apiKey } = await createApiKey(db.sql, datasourceId);
  for (const time of HOSTILE_TIMES) {
    const res = await fn.handle(
      postRequest({ temperature: 1 }, { key: apiKey, query: `?observed_at=${encodeURIComponent(time)}` }),
    );
    const body = await res.json();
    assert.equal(res.status, 400, `${time}: ${JSON.stringify(body)}`);
    assert.equal(body.code, "invalid_observed_at");
    assert.match(body.message, /observed_at/);
  }
});

Deno.test("ingest_write_batch refuses a request it cannot read alone, and never raises for one request", async () => {
  await using db = await createTestDatabase();
  const datasourceId = await createDatasource(db.sql, await createWorkspace(db.sql, "A"));
  const { keyId } = await createApiKey(db.sql, datasourceId);
  const good = { datasource_id: datasourceId, key_id: keyId, values: { temperature: 7 }, observed_at: null };
  const bad = [
    { ...good, key_id: "not-a-uuid" },
    { ...good, datasource_id: "{}" },
    { ...good, values: 42 },
    { ...good, values: "x" },
    { ...good, values: null },
    { ...good, observed_at: "0000-01-01T00:00:00Z" },
    { ...good, observed_at: "infinity" },
    { ...good, observed_at: "-infinity" },
    { ...good, observed_at: "2026-02-30T00:00:00Z" },
    { ...good, observed_at: "yesterday" },
    { ...good, observed_at: 12 },
    { ...good, key_id: 12 },
    42,
    "text",
    [good],
    null,
  ];
  const [{ r }] =
    (await db.sql`select public.ingest_write_batch(${db.sql.json([good, ...bad, good] as never)}) as r`) as unknown as [
      { r: { results: { code?: string }[] } },
    ];
  assert.equal(r.results.length, bad.length + 2);
  assert.ok("observed_at" in r.results[0]! && "observed_at" in r.results.at(-1)!, JSON.stringify(r));
  for (const [i, result] of r.results.slice(1, -1).entries()) {
    assert.match(result.code ?? "", /^PT4\d\d$/, `${JSON.stringify(bad[i])}: ${JSON.stringify(result)}`);
  }
  const [row] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(row!.n, 2);
  // Not an array at all: nothing to store, and no error either.
  const [{ r: empty }] = (await db.sql`select public.ingest_write_batch('{"a": 1}'::jsonb) as r`) as unknown as [
    { r: { results: unknown[] } },
  ];
  assert.deepEqual(empty.results ?? [], []);
});

Deno.test("ingest_write_readings refuses a request it cannot read alone, and never raises for one request", async () => {
  await using db = await createTestDatabase();
  const datasourceId = await createDatasource(db.sql, await createWorkspace(db.sql, "A"));
  const { keyId } = await createApiKey(db.sql, datasourceId);
  const reading = { t: Date.now() - 1000, v: { temperature: 7 } };
  const good = { datasource_id: datasourceId, key_id: keyId, readings: [reading] };
  const bad = [
    { ...good, key_id: "not-a-uuid" },
    { ...good, readings: [] },
    { ...good, readings: 42 },
    { ...good, readings: [42] },
    { ...good, readings: [{ ...reading, v: [1] }] },
    { ...good, readings: [{ ...reading, v: { humidity: 1 } }] },
    { ...good, readings: [{ ...reading, t: "2026-02-30T00:00:00Z" }] },
    { ...good, readings: [{ ...reading, t: 1e300 }] },
    { ...good, readings: [{ ...reading, t: -1e20 }] },
    { ...good, readings: [reading, { ...reading, t: "infinity" }] },
    { ...good, idempotency_key: "", request_hash: "x" },
    { ...good, idempotency_key: 42, request_hash: "x" },
    { ...good, idempotency_key: "k" },
    "text",
    null,
  ];
  const [{ r }] =
    (await db.sql`select public.ingest_write_readings(${
      db.sql.json([good, ...bad, good] as never)
    }) as r`) as unknown as [{ r: { results: { code?: string; readings?: number }[] } }];
  assert.equal(r.results.length, bad.length + 2);
  assert.equal(r.results[0]!.readings, 1);
  assert.equal(r.results.at(-1)!.readings, 1);
  for (const [i, result] of r.results.slice(1, -1).entries()) {
    assert.match(result.code ?? "", /^PT4\d\d$/, `${JSON.stringify(bad[i])}: ${JSON.stringify(result)}`);
  }
  const [row] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(row!.n, 2);
});
