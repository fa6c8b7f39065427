/** Authentication and authorization of ingest-data, checked before the body is read. */
import assert from "node:assert/strict";
import { loadConfig } from "../../supabase/functions/ingest-data/config.ts";
import { createStore } from "../../supabase/functions/ingest-data/create_store.ts";
import { createHandler } from "../../supabase/functions/ingest-data/handler.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, ENDPOINT, postRequest } from "../support/function.ts";
import { createKey, seedWorkspace } from "../support/seed.ts";

Deno.test("the key is accepted in X-API-Key and in Authorization: Bearer", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  for (const header of ["x-api-key", "bearer"] as const) {
    const res = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey, header }));
    assert.equal(res.status, 200, header);
    await res.body?.cancel();
  }
});

Deno.test("X-API-Key wins over an Authorization header carrying a Supabase JWT", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest({ temperature: 1 }, {
    key: s.apiKey,
    headers: { Authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig" },
  }));
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("401 with WWW-Authenticate for a missing, malformed, unknown, revoked or expired key", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const expired = await createKey(db.sql, s.datasourceId, { expiresAt: new Date(Date.now() + 60_000) });
  await db
    .sql`update public.datasource_api_keys set expires_at = now() - interval '1 second' where id = ${expired.keyId}`;
  const revoked = await createKey(db.sql, s.datasourceId);
  await db.sql`update public.datasource_api_keys set revoked_at = now() where id = ${revoked.keyId}`;
  await using fn = createTestFunction(db.url);
  const cases: [string, Request, string][] = [
    ["missing", postRequest({ temperature: 1 }), "missing_api_key"],
    ["empty bearer", postRequest({ temperature: 1 }, { headers: { Authorization: "Bearer " } }), "missing_api_key"],
    [
      "basic auth",
      postRequest({ temperature: 1 }, { headers: { Authorization: "Basic dXNlcjpwYXNz" } }),
      "unsupported_auth_scheme",
    ],
    ["malformed", postRequest({ temperature: 1 }, { key: "tw_short" }), "invalid_api_key"],
    ["unknown", postRequest({ temperature: 1 }, { key: "tw_" + "a".repeat(64) }), "invalid_api_key"],
    ["revoked", postRequest({ temperature: 1 }, { key: revoked.apiKey }), "revoked_api_key"],
    ["expired", postRequest({ temperature: 1 }, { key: expired.apiKey }), "expired_api_key"],
  ];
  for (const [label, request, code] of cases) {
    const res = await fn.handle(request);
    assert.equal(res.status, 401, label);
    assert.match(res.headers.get("WWW-Authenticate") ?? "", /^Bearer /, label);
    const body = await res.json();
    assert.equal(body.code, code, label);
    assert.equal(body.request_id, res.headers.get("X-Request-Id"), label);
  }
  const [count] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(count!.n, 0);
});

Deno.test("authentication comes before the body: no key and bad JSON is a 401, not a 400", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest("{not json", {}));
  assert.equal(res.status, 401);
  assert.deepEqual((await res.json()).issues, []);
});

Deno.test("403 for a read-only key and for a disabled datasource; nothing written", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const readOnly = await createKey(db.sql, s.datasourceId, { scopes: ["ingest:read"] });
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest({ temperature: 1 }, { key: readOnly.apiKey }));
  assert.equal(res.status, 403);
  assert.equal((await res.json()).code, "insufficient_scope");

  await db.sql`update public.datasources set enabled = false where id = ${s.datasourceId}`;
  await using fresh = createTestFunction(db.url); // no cached key
  const disabled = await fresh.handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  assert.equal(disabled.status, 403);
  assert.equal((await disabled.json()).code, "datasource_disabled");
  const [count] = await db.sql`select count(*)::int as n from public.datasource_values`;
  assert.equal(count!.n, 0);
});

Deno.test("a key revoked while cached cannot write: ingest_write checks it again", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_KEY_CACHE_TTL_MS: "600000" });
  const first = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  assert.equal(first.status, 200);
  await first.body?.cancel();
  await db.sql`update public.datasource_api_keys set revoked_at = now() where id = ${s.keyId}`;
  const second = await fn.handle(postRequest({ temperature: 2 }, { key: s.apiKey }));
  assert.equal(second.status, 401);
  await second.body?.cancel();
  const [latest] = await db.sql`select value from public.datasource_values where data_key = 'temperature'`;
  assert.equal(latest!.value, 1);
});

Deno.test("405 with Allow for other methods; OPTIONS answers the CORS preflight", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  for (const method of ["PUT", "DELETE", "PATCH"]) {
    const res = await fn.handle(new Request(ENDPOINT, { method }));
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get("Allow"), "GET, POST, OPTIONS");
    assert.equal((await res.json()).code, "method_not_allowed");
  }
  const preflight = await fn.handle(
    new Request(ENDPOINT, {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST" },
    }),
  );
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("Access-Control-Allow-Origin"), "*");
  assert.match(preflight.headers.get("Access-Control-Allow-Headers") ?? "", /x-api-key/);
});

Deno.test("a flood of random keys costs at most the lookup budget; known keys are unaffected; a new key gets 503", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const fresh = await createKey(db.sql, s.datasourceId);
  const config = loadConfig({
    DATABASE_URL: db.url,
    INGEST_KEY_LOOKUPS_PER_SECOND: "5",
    INGEST_KEY_LOOKUPS_BURST: "5",
  });
  await using store = Object.assign(createStore(config.store), { [Symbol.asyncDispose]: () => store.close() });
  let lookups = 0;
  const resolveKey = store.resolveKey.bind(store);
  store.resolveKey = (hash) => (lookups++, resolveKey(hash));
  let clock = Date.now();
  const handle = createHandler({ config, store, now: () => clock, log: () => {} });
  const post = async (key: string) => {
    const res = await handle(postRequest({ temperature: 1 }, { key }));
    return { status: res.status, retryAfter: res.headers.get("Retry-After"), ...(await res.json()) };
  };

  assert.equal((await post(s.apiKey)).status, 200);
  const random = Array.from({ length: 40 }, (_, i) => "tw_" + i.toString(16).padStart(64, "0"));
  const answers = [];
  for (const key of random) answers.push(await post(key));
  assert.deepEqual(answers.slice(0, 4).map((a) => a.code), Array(4).fill("invalid_api_key"));
  for (const answer of answers.slice(4)) {
    assert.equal(answer.status, 503);
    assert.equal(answer.code, "key_lookup_limited");
    assert.equal(answer.retryAfter, "1");
  }
  assert.equal(lookups, 5, "the known key's lookup and the burst's four");
  // The known key still writes; a key found unknown stays a 401, from the cache.
  assert.equal((await post(s.apiKey)).status, 200);
  assert.equal((await post(random[0]!)).code, "invalid_api_key");
  assert.equal(lookups, 5);
  // A valid key this instance has not seen is not called invalid: it was not checked. It retries and is stored.
  const first = await post(fresh.apiKey);
  assert.equal(first.status, 503, JSON.stringify(first));
  clock += Number(first.retryAfter) * 1000;
  assert.equal((await post(fresh.apiKey)).status, 200);
  assert.equal(lookups, 6);
});
