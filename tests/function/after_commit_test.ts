/**
 * After the commit, nothing can fail the answer (issue 20, finding 2): when
 * the write committed but its answer was lost (the connection dropped right
 * after COMMIT) or cannot be read, the answer is a 503, never "not stored",
 * and a retry with the same Idempotency-Key gets the recorded answer as a 200
 * without storing twice.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";
import { startPostgresProxy } from "../support/postgres_proxy.ts";
import { seedWorkspace } from "../support/seed.ts";

const API_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function historyRows(sql: Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from public.datasource_readings`;
  return row!.n;
}

Deno.test("connection lost right after COMMIT: 503, stored once, and the retry with the same key replays 200", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  using proxy = startPostgresProxy(db.url);
  await using fn = createTestFunction(proxy.url);
  await lostAnswers(db.sql, s.apiKey, fn.handle, proxy);
});

/** A single payload, then readings: each answer lost after its commit, then retried with its key. */
async function lostAnswers(
  sql: Sql,
  apiKey: string,
  handle: (request: Request) => Promise<Response>,
  proxy: { arm(): void; readonly dropped: number },
): Promise<void> {
  for (const body of [{ temperature: 1 }, [{ observed_at: Date.now() - 1000, values: { temperature: 2 } }]]) {
    const before = await historyRows(sql);
    const headers = { "Idempotency-Key": crypto.randomUUID() };
    proxy.arm();
    const lost = await handle(postRequest(body, { key: apiKey, headers }));
    const lostBody = await lost.json();
    assert.equal(lost.status, 503, JSON.stringify(lostBody));
    assert.equal(lost.headers.get("Retry-After"), "5");
    assert.equal(await historyRows(sql), before + 1, "the lost answer's write committed");

    const retry = await handle(postRequest(body, { key: apiKey, headers }));
    const retryBody = await retry.json();
    assert.equal(retry.status, 200, JSON.stringify(retryBody));
    assert.equal(retry.headers.get("Idempotent-Replayed"), "true");
    assert.match(retryBody.received_at, API_TIME);
    assert.equal(await historyRows(sql), before + 1, "stored once");
  }
  assert.equal(proxy.dropped, 2);
}

/** Replaces a write function by one that runs it and commits, but answers what the store cannot read. */
async function garbleAnswers(sql: Sql, fn: string, args: string, call: string): Promise<() => Promise<void>> {
  await sql.unsafe(`alter function public.${fn}(${args}) rename to ${fn}_real`);
  await sql.unsafe(`create function public.${fn}(${args}) returns jsonb language sql security definer
    set search_path = '' as $$ select jsonb_build_object('unexpected', public.${fn}_real(${call})) $$`);
  await sql.unsafe(`grant execute on function public.${fn}(${args}) to service_role`);
  return async () => {
    await sql.unsafe(`drop function public.${fn}(${args})`);
    await sql.unsafe(`alter function public.${fn}_real(${args}) rename to ${fn}`);
  };
}

Deno.test("an answer the store cannot read after the commit: 503 for every route, never 500, and the retry replays 200", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { keepHistory: true });
  await using fn = createTestFunction(db.url);
  const routes = [
    // A single payload with an Idempotency-Key goes through ingest_write_batch (with the function's limits).
    {
      fn: "ingest_write_batch",
      args: "p_requests jsonb, p_limits jsonb",
      call: "p_requests, p_limits",
      body: { temperature: 1 },
      key: true,
    },
    {
      fn: "ingest_write_readings",
      args: "p_requests jsonb",
      call: "p_requests",
      body: [{ observed_at: Date.now() - 1000, values: { temperature: 2 } }],
      key: true,
    },
    // Without a key there is nothing to replay: the 503 still never says "not stored".
    {
      fn: "ingest_write",
      args: "p_datasource_id uuid, p_key_id uuid, p_values jsonb, p_observed_at timestamptz",
      call: "p_datasource_id, p_key_id, p_values, p_observed_at",
      body: { temperature: 3 },
      key: false,
    },
  ];
  for (const route of routes) {
    const before = await historyRows(db.sql);
    const headers: Record<string, string> = route.key ? { "Idempotency-Key": crypto.randomUUID() } : {};
    const restore = await garbleAnswers(db.sql, route.fn, route.args, route.call);
    const lost = await fn.handle(postRequest(route.body, { key: s.apiKey, headers }));
    await restore();
    const lostBody = await lost.json();
    assert.equal(lost.status, 503, `${route.fn}: ${JSON.stringify(lostBody)}`);
    assert.equal(await historyRows(db.sql), before + 1, `${route.fn}: the write committed`);
    if (!route.key) continue;
    const retry = await fn.handle(postRequest(route.body, { key: s.apiKey, headers }));
    assert.equal(retry.status, 200, route.fn);
    assert.equal(retry.headers.get("Idempotent-Replayed"), "true", route.fn);
    assert.equal(await historyRows(db.sql), before + 1, `${route.fn}: stored once`);
  }
  assert.deepEqual(fn.logs.filter((l) => l.status === 500), []);
});
