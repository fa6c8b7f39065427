/** Authorization edge cases, and no key material in any log line or response. */
import assert from "node:assert/strict";
import { hashApiKey } from "../../supabase/functions/ingest-data/api_key.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, ENDPOINT, postRequest } from "../support/function.ts";
import { createKey, seedWorkspace } from "../support/seed.ts";

const get = (key: string) => new Request(ENDPOINT, { headers: { "X-API-Key": key } });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("a key only reaches its own datasource: another datasource's DataKeys are a 400, nothing written there", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql, {
    widgets: [{ name: "t", widget_type: "SingleData", data_key: "temperature", settings: {} }],
  });
  const b = await seedWorkspace(db.sql, {
    widgets: [{ name: "h", widget_type: "SingleData", data_key: "humidity", settings: {} }],
  });
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(postRequest({ humidity: 40 }, { key: a.apiKey }));
  assert.equal(res.status, 400);
  assert.equal((await res.json()).issues[0].path, "humidity");
  const [count] = await db
    .sql`select count(*)::int as n from public.datasource_values where datasource_id = ${b.datasourceId}`;
  assert.equal(count!.n, 0);
});

Deno.test("revocation while cached: writes stop at once, and from the first refused write GET and POST say revoked_api_key", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_KEY_CACHE_TTL_MS: "600000" });
  assert.equal((await fn.handle(get(s.apiKey))).status, 200);
  await db.sql`update public.datasource_api_keys set revoked_at = now() where id = ${s.keyId}`;
  const cached = await fn.handle(get(s.apiKey));
  assert.equal(
    cached.status,
    200,
    "until a write, the cached key still reads its Example Schema (the documented bound)",
  );
  await cached.body?.cancel();
  const requests = [
    postRequest({ temperature: 1 }, { key: s.apiKey }),
    get(s.apiKey),
    postRequest([{ observed_at: Date.now() - 1000, values: { temperature: 2 } }], { key: s.apiKey }),
    get(s.apiKey),
  ];
  for (const request of requests) {
    const res = await fn.handle(request);
    assert.equal(res.status, 401, request.method);
    assert.match(res.headers.get("WWW-Authenticate") ?? "", /^Bearer /);
    assert.equal((await res.json()).code, "revoked_api_key", request.method);
  }
  const [count] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(count!.n, 0);
  // A key deleted while cached is unknown from its first refused write on.
  const other = await createKey(db.sql, s.datasourceId);
  (await fn.handle(get(other.apiKey))).body?.cancel();
  await db.sql`delete from public.datasource_api_keys where id = ${other.keyId}`;
  for (const request of [postRequest({ temperature: 1 }, { key: other.apiKey }), get(other.apiKey)]) {
    const res = await fn.handle(request);
    assert.equal((await res.json()).code, "invalid_api_key", request.method);
  }
});

Deno.test("a datasource disabled while its key is cached refuses writes at once", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_KEY_CACHE_TTL_MS: "600000" });
  (await fn.handle(get(s.apiKey))).body?.cancel();
  await db.sql`update public.datasources set enabled = false where id = ${s.datasourceId}`;
  const res = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  assert.equal(res.status, 403);
  assert.equal((await res.json()).code, "datasource_disabled", "the refused write makes the cache look again");
  const again = await fn.handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  assert.equal((await again.json()).code, "datasource_disabled");
});

Deno.test("a key that expires while cached is refused from its expiry on", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const soon = await createKey(db.sql, s.datasourceId, { expiresAt: new Date(Date.now() + 400) });
  await using fn = createTestFunction(db.url, { INGEST_KEY_CACHE_TTL_MS: "600000" });
  const before = await fn.handle(postRequest({ temperature: 1 }, { key: soon.apiKey }));
  assert.equal(before.status, 200);
  await before.body?.cancel();
  await sleep(450);
  const after = await fn.handle(postRequest({ temperature: 2 }, { key: soon.apiKey }));
  assert.equal(after.status, 401);
  assert.equal((await after.json()).code, "expired_api_key");
});

Deno.test("no key material or payload value appears in any log line or response", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const revoked = await createKey(db.sql, s.datasourceId);
  await db.sql`update public.datasource_api_keys set revoked_at = now() where id = ${revoked.keyId}`;
  const unknown = "tw_" + "5".repeat(64);
  const secrets = [s.apiKey, revoked.apiKey, unknown].flatMap((k) => [k, k.slice(3), hashApiKey(k)]);
  const secretValue = "SECRET-READING-7731";

  const consoleLines: string[] = [];
  const original = { log: console.log, error: console.error, warn: console.warn, info: console.info };
  for (const level of ["log", "error", "warn", "info"] as const) {
    console[level] = (...args: unknown[]) => consoleLines.push(args.map(String).join(" "));
  }
  const bodies: string[] = [];
  await using fn = createTestFunction(db.url);
  try {
    const requests = [
      postRequest({ temperature: secretValue }, { key: s.apiKey }),
      postRequest({ temperature: { secretValue } }, { key: s.apiKey, header: "bearer" }),
      postRequest(`{"temperature": "${secretValue}"`, { key: s.apiKey }),
      postRequest({ temperature: secretValue }, { key: revoked.apiKey }),
      postRequest({ temperature: secretValue }, { key: unknown }),
      postRequest({ temperature: secretValue }, { key: s.apiKey.slice(0, 40) }),
      get(s.apiKey),
      new Request(ENDPOINT, { method: "DELETE", headers: { "X-API-Key": s.apiKey } }),
    ];
    for (const request of requests) {
      const res = await fn.handle(request);
      bodies.push(await res.text(), JSON.stringify([...res.headers]));
    }
  } finally {
    Object.assign(console, original);
  }
  assert.equal(fn.logs.length, 8, "one log line per request");
  const everything = [...fn.logs.map((l) => JSON.stringify(l)), ...consoleLines, ...bodies].join("\n");
  for (const secret of secrets) assert.ok(!everything.includes(secret), "key material leaked");
  const logText = [...fn.logs.map((l) => JSON.stringify(l)), ...consoleLines].join("\n");
  assert.ok(!logText.includes(secretValue), "a payload value was logged");
});
