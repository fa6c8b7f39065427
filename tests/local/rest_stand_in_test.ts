/**
 * local/rest_stand_in.ts: `POST /rest/v1/rpc/<name>` as PostgREST answers it,
 * on the real migrations: the JWT's role and claims, row level security, and
 * PostgREST's error shape and statuses.
 */
import assert from "node:assert/strict";
import { DEFAULT_JWT_SECRET, mintToken } from "../../local/jwt.ts";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

async function rpc(stack: TestStack, name: string, body: unknown, token: string | null, method = "POST") {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) Object.assign(headers, { apikey: stack.anonKey, Authorization: `Bearer ${token}` });
  const res = await fetch(`${stack.url}/rest/v1/rpc/${name}`, {
    method,
    headers,
    body: method === "POST" ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("rest stand-in: datasource_latest_values as each caller; errors in PostgREST's shape", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  assert.equal(await stack.post(s.apiKey, { temperature: 21.5, motor_stats: { rpm: 1, vibration: 2 } }), 200);
  const args = { p_datasource_id: s.datasourceId };

  const member = await rpc(stack, "datasource_latest_values", args, await stack.tokenFor(s.viewer));
  assert.equal(member.status, 200);
  assert.deepEqual(member.body.map((r: { data_key: string }) => r.data_key), ["motor_stats", "temperature"]);
  assert.deepEqual(Object.keys(member.body[1]).sort(), ["data_key", "observed_at", "received_at", "value"]);
  assert.equal(member.body[1].value, 21.5);

  const outsider = await rpc(stack, "datasource_latest_values", args, await stack.tokenFor(s.outsider));
  assert.deepEqual(outsider, { status: 200, body: [] }, "row level security: nothing for a non-member");

  const anon = await rpc(stack, "datasource_latest_values", args, stack.anonKey);
  assert.equal(anon.status, 401, "42501 as anon is a 401, as in PostgREST");
  assert.deepEqual(Object.keys(anon.body).sort(), ["code", "details", "hint", "message"]);
  assert.equal(anon.body.code, "42501");

  const expired = await rpc(stack, "datasource_latest_values", args, await stack.tokenFor(s.viewer, { expiresIn: -5 }));
  assert.deepEqual([expired.status, expired.body.code, expired.body.message], [401, "PGRST303", "JWT expired"]);
  // The Supabase CLI's published secret signs nothing here: the stack has its own.
  const forged = await mintToken(DEFAULT_JWT_SECRET, { role: "service_role" });
  assert.equal((await rpc(stack, "datasource_latest_values", args, forged)).status, 401);
  assert.equal((await rpc(stack, "datasource_latest_values", args, null)).status, 401);

  const missing = await rpc(stack, "no_such_function", {}, await stack.tokenFor(s.viewer));
  assert.deepEqual([missing.status, missing.body.code], [404, "PGRST202"]);
  const wrongArgs = await rpc(
    stack,
    "datasource_latest_values",
    { id: s.datasourceId },
    await stack.tokenFor(s.viewer),
  );
  assert.deepEqual([wrongArgs.status, wrongArgs.body.code], [404, "PGRST202"]);
  const badUuid = await rpc(
    stack,
    "datasource_latest_values",
    { p_datasource_id: "x" },
    await stack.tokenFor(s.viewer),
  );
  assert.deepEqual([badUuid.status, badUuid.body.code], [400, "22P02"]);
  const get = await rpc(stack, "datasource_latest_values", null, await stack.tokenFor(s.viewer), "GET");
  assert.equal(get.status, 405);

  // A PTxxx code raised by a function is its HTTP status, as PostgREST maps it.
  const service = await mintToken(stack.jwtSecret, { role: "service_role" });
  const revoked = await rpc(stack, "ingest_write", {
    p_datasource_id: s.datasourceId,
    p_key_id: crypto.randomUUID(),
    p_values: { temperature: 1 },
  }, service);
  assert.deepEqual([revoked.status, revoked.body.code, revoked.body.message], [401, "PT401", "API key is not valid"]);
});

Deno.test("rest stand-in: a token's role the authenticator cannot become is refused as PostgREST refuses it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const keys = async () => Number((await db.sql`select count(*) from public.datasource_api_keys`)[0]!.count);
  const before = await keys();
  const args = { p_datasource_id: s.datasourceId, p_name: "stolen", p_scopes: ["ingest:write"] };

  // The review's attack: a token claiming postgres (signed with the stack's own secret, even) made a write key.
  const superuser = await rpc(
    stack,
    "create_datasource_api_key",
    args,
    await mintToken(stack.jwtSecret, {
      role: "postgres",
    }),
  );
  assert.deepEqual(superuser, {
    status: 403,
    body: { code: "42501", details: null, hint: null, message: 'permission denied to set role "postgres"' },
  });
  const unknown = await fetch(`${stack.url}/rest/v1/rpc/datasource_latest_values`, {
    method: "POST",
    headers: { Authorization: `Bearer ${await mintToken(stack.jwtSecret, { role: "nobody" })}` },
    body: JSON.stringify({ p_datasource_id: s.datasourceId }),
  });
  assert.equal(unknown.status, 401);
  assert.equal(unknown.headers.get("WWW-Authenticate"), "Bearer");
  assert.deepEqual(await unknown.json(), {
    code: "22023",
    details: null,
    hint: null,
    message: 'role "nobody" does not exist',
  });
  assert.equal(await keys(), before, "no key was made");
});

Deno.test("rest stand-in: a request runs as authenticator become the token's role, never as a superuser", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`create function public.test_whoami() returns jsonb language sql
    as $$ select jsonb_build_object('session', session_user, 'current', current_user) $$`;
  await db.sql`grant execute on function public.test_whoami() to authenticated`;
  await using stack = await startTestStack(db.url);
  const member = await rpc(stack, "test_whoami", {}, await stack.tokenFor(s.viewer));
  assert.deepEqual(member, { status: 200, body: { session: "authenticator", current: "authenticated" } });
});

Deno.test("rest stand-in: a body over 1 MiB is a 413, a malformed function name a 400; nothing runs", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const headers = { Authorization: `Bearer ${await stack.tokenFor(s.owner)}`, "Content-Type": "application/json" };
  const keys = async () => Number((await db.sql`select count(*) from public.datasource_api_keys`)[0]!.count);
  const before = await keys();
  const big = JSON.stringify({ p_datasource_id: s.datasourceId, p_name: "x".repeat(1024 * 1024) });
  // Streamed without a Content-Length, so the stand-in has to stop reading by itself.
  const stream = new Blob([big]).stream();
  const tooLarge = await fetch(`${stack.url}/rest/v1/rpc/create_datasource_api_key`, {
    method: "POST",
    headers,
    body: stream,
  });
  assert.equal(tooLarge.status, 413);
  assert.deepEqual(await tooLarge.json(), {
    code: "PT413",
    details: "The REST stand-in reads request bodies of at most 1048576 bytes",
    hint: null,
    message: "Payload Too Large",
  });
  assert.equal(await keys(), before);

  const malformed = await fetch(`${stack.url}/rest/v1/rpc/%E0%A4%A`, { method: "POST", headers, body: "{}" });
  assert.equal(malformed.status, 400);
  assert.equal((await malformed.json()).code, "PGRST125");
});
