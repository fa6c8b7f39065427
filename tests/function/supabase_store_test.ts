/**
 * The `supabase` store adapter (supabase-js `rpc()`), against the local
 * stack's REST stand-in (local/rest_stand_in.ts): PostgREST cannot run here,
 * so the stand-in plays its part, executing the real SQL functions on the test
 * database as the service role key's role and answering errors the way
 * PostgREST does (PTxxx -> status).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../supabase/functions/ingest-data/config.ts";
import { createHandler } from "../../supabase/functions/ingest-data/handler.ts";
import { createStore } from "../../supabase/functions/ingest-data/create_store.ts";
import { DEFAULT_JWT_SECRET, serviceRoleKey } from "../../local/jwt.ts";
import { AUTHENTICATOR, connectAuthenticator } from "../../local/authenticator.ts";
import { createRestStandIn } from "../../local/rest_stand_in.ts";
import { createTestDatabase } from "../support/database.ts";
import { DOC_PAYLOADS, postRequest } from "../support/function.ts";
import { createKey, seedWorkspace } from "../support/seed.ts";

const SERVICE_KEY = await serviceRoleKey(DEFAULT_JWT_SECRET);

interface Recorded {
  path: string;
  apikey: string | null;
  authorization: string | null;
  body: Record<string, unknown>;
}

/** The REST stand-in, recording each request; `override` may answer instead. */
function postgrestStandIn(databaseUrl: string, override?: () => Response | null) {
  const recorded: Recorded[] = [];
  const authenticator = connectAuthenticator(databaseUrl, { kind: "login", user: AUTHENTICATOR });
  const rest = createRestStandIn({ authenticator, jwtSecret: DEFAULT_JWT_SECRET });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    // The store's flush of held broadcasts (after a write, on its own timer) always reaches the database: a
    // canned answer is for the call under test, never consumed by the flush racing it.
    if (new URL(request.url).pathname.endsWith("/rpc/ingest_flush_broadcasts")) return await rest(request);
    recorded.push({
      path: new URL(request.url).pathname,
      apikey: request.headers.get("apikey"),
      authorization: request.headers.get("authorization"),
      body: await request.clone().json(),
    });
    return override?.() ?? await rest(request);
  });
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  return {
    url,
    recorded,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await authenticator.end();
    },
  };
}

function supabaseHandler(url: string) {
  const config = loadConfig({ INGEST_STORE: "supabase", SUPABASE_URL: url, SUPABASE_SERVICE_ROLE_KEY: SERVICE_KEY });
  return createHandler({ config, store: createStore(config.store), log: () => {} });
}

Deno.test("supabase store: resolves and writes through rpc() with the service role key", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using postgrest = postgrestStandIn(db.url);
  const handle = supabaseHandler(postgrest.url);
  const res = await handle(postRequest(DOC_PAYLOADS.combined, { key: s.apiKey }));
  assert.equal(res.status, 200, await res.clone().text());
  assert.deepEqual((await res.json()).stored, ["motor_stats", "production_output", "temperature"]);

  assert.deepEqual(postgrest.recorded.map((r) => r.path), [
    "/rest/v1/rpc/ingest_resolve_key",
    "/rest/v1/rpc/ingest_write",
  ]);
  for (const r of postgrest.recorded) {
    assert.equal(r.apikey, SERVICE_KEY);
    assert.equal(r.authorization, `Bearer ${SERVICE_KEY}`);
  }
  assert.match(postgrest.recorded[0]!.body.p_key_hash as string, /^[0-9a-f]{64}$/);
  assert.deepEqual(Object.keys(postgrest.recorded[1]!.body).sort(), [
    "p_datasource_id",
    "p_key_id",
    "p_limits",
    "p_observed_at",
    "p_values",
  ]);
  const [count] = await db.sql`select count(*)::int as n from public.datasource_values`;
  assert.equal(count!.n, 3);
});

Deno.test("supabase store: PostgREST errors map to the same statuses as the postgres store", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  let answer: Response | null = null;
  await using postgrest = postgrestStandIn(db.url, () => answer);
  const handle = supabaseHandler(postgrest.url);
  const warm = await handle(postRequest({ temperature: 1 }, { key: s.apiKey }));
  assert.equal(warm.status, 200);
  await warm.body?.cancel();

  await db.sql`update public.datasource_api_keys set revoked_at = now() where id = ${s.keyId}`;
  const revoked = await handle(postRequest({ temperature: 2 }, { key: s.apiKey }));
  assert.equal(revoked.status, 401, "PT401 from ingest_write");
  assert.equal((await revoked.json()).code, "revoked_api_key", "the refused write makes the cache look again");
  const other = await createKey(db.sql, s.datasourceId);
  (await handle(postRequest({ temperature: 2 }, { key: other.apiKey }))).body?.cancel(); // cached before the cases

  const cases: [Response, number][] = [
    [Response.json({ code: "PGRST000", message: "Could not connect with the database" }, { status: 503 }), 503],
    [new Response("Bad gateway", { status: 502 }), 503],
    [Response.json({ code: "XX000", message: "internal" }, { status: 500 }), 500],
    [Response.json({ code: "PT403", message: "Datasource is disabled" }, { status: 403 }), 403],
  ];
  for (const [response, status] of cases) {
    answer = response;
    const res = await handle(postRequest({ temperature: 3 }, { key: other.apiKey }));
    assert.equal(res.status, status, `PostgREST ${response.status}`);
    if (status === 503) assert.equal(res.headers.get("Retry-After"), "5");
    await res.body?.cancel();
  }
});

Deno.test("supabase store: readings and Idempotency-Key through rpc('ingest_write_readings')", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using postgrest = postgrestStandIn(db.url);
  const handle = supabaseHandler(postgrest.url);
  const readings = [2, 1].map((m) => ({ observed_at: Date.now() - m * 60_000, values: { temperature: m } }));
  const headers = { "Idempotency-Key": "supabase-store-1" };
  const first = await handle(postRequest(readings, { key: s.apiKey, headers }));
  const body = await first.json();
  assert.equal(first.status, 200, JSON.stringify(body));
  assert.equal(body.readings, 2);
  assert.deepEqual(body.latest, ["temperature"]);
  const again = await handle(postRequest(readings, { key: s.apiKey, headers }));
  assert.equal(again.headers.get("Idempotent-Replayed"), "true");
  assert.deepEqual(await again.json(), body);
  const other = await handle(postRequest(readings.slice(1), { key: s.apiKey, headers }));
  assert.equal(other.status, 422);
  await other.body?.cancel();
  const [row] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(row!.n, 2);
  const [latest] = await db.sql`select value from public.datasource_values where data_key = 'temperature'`;
  assert.equal(latest!.value, 1);
});

Deno.test("supabase store: a single payload with an Idempotency-Key is stored once and replayed", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using postgrest = postgrestStandIn(db.url);
  const handle = supabaseHandler(postgrest.url);
  const headers = { "Idempotency-Key": "supabase-store-single" };
  const first = await handle(postRequest({ temperature: 3 }, { key: s.apiKey, headers }));
  const body = await first.json();
  assert.equal(first.status, 200, JSON.stringify(body));
  assert.deepEqual(body.stored, ["temperature"]);
  const again = await handle(postRequest({ temperature: 3 }, { key: s.apiKey, headers }));
  assert.equal(again.headers.get("Idempotent-Replayed"), "true");
  assert.deepEqual(await again.json(), body);
  const [row] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(row!.n, 1);
});

Deno.test("supabase store: an unreachable API is a 503", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const handle = supabaseHandler(`http://127.0.0.1:${port}`);
  const res = await handle(postRequest({ temperature: 1 }, { key: "tw_" + "c".repeat(64) }));
  assert.equal(res.status, 503);
  await res.body?.cancel();
});
