/**
 * One tenant's big requests never fail or stall another's (issue 20, finding
 * 3): 64 concurrent ~1 MB requests on one key used to form one ~58 MB batch
 * statement that hit the statement timeout, and all got 503 although each
 * commits alone in ~100 ms, while small requests of another datasource in the
 * same lane waited seconds. A batch is now capped by bytes
 * (INGEST_MAX_BATCH_BYTES), a request passed over for its size never holds up
 * the small ones queued behind it, and a batch that hits the statement
 * timeout (57014) is retried one request at a time.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";
import { startPostgresProxy } from "../support/postgres_proxy.ts";
import { createKey, seedWorkspace } from "../support/seed.ts";
import { createDatasource } from "../../local/provisioning.ts";

/** A BarChart value of about `bytes` characters of JSON (10,000 labels at most, as the default limits allow). */
function bigChart(bytes: number, seed: number) {
  const n = 10_000;
  const width = Math.max(1, Math.floor(bytes / n) - 12);
  return {
    production_output: {
      machines: Array.from({ length: n }, (_, i) => `${seed}-${i}-`.padEnd(width, "x")),
      units_per_hour: Array.from({ length: n }, (_, i) => i + seed),
    },
  };
}

async function historyOf(sql: Sql, datasourceId: string): Promise<number> {
  const [row] =
    await sql`select count(*)::int as n from public.datasource_readings where datasource_id = ${datasourceId}`;
  return row!.n;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** `count` small requests one after another; their latencies in ms. */
async function smallOnes(handle: (r: Request) => Promise<Response>, apiKey: string, count: number) {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const res = await handle(postRequest({ temperature: i }, { key: apiKey }));
    assert.equal(res.status, 200, await res.text());
    latencies.push(performance.now() - started);
  }
  return latencies;
}

Deno.test("48 concurrent ~1 MB requests of one datasource all commit, and another datasource's small ones in the same lane stay fast", async () => {
  await using db = await createTestDatabase();
  const big = await seedWorkspace(db.sql);
  const smallId = await createDatasource(db.sql, big.workspaceId, { name: "Small" });
  const small = await createKey(db.sql, smallId);
  // The store's statements go through a proxy that records their sizes.
  using proxy = startPostgresProxy(db.url);
  // One lane, so that both datasources share it; a statement timeout that a ~1 MB request alone meets
  // many times over (about 100 ms), but a batch of all 48 (48 MB, several seconds) does not.
  await using fn = createTestFunction(proxy.url, { INGEST_WRITE_CONCURRENCY: "1", INGEST_DB_TIMEOUT_MS: "2000" });
  const bodies = Array.from({ length: 48 }, (_, i) => JSON.stringify(bigChart(960_000, i)));
  assert.ok(bodies.every((b) => b.length > 900_000 && b.length <= 1024 * 1024), "each body is ~1 MB, within the limit");

  const alone = await smallOnes(fn.handle, small.apiKey, 10);
  const bigs = Promise.all(bodies.map((body) => fn.handle(postRequest(body, { key: big.apiKey }))));
  const loaded = await smallOnes(fn.handle, small.apiKey, 10);
  const answers = await bigs;

  const statuses = await Promise.all(answers.map(async (r) => `${r.status} ${r.status === 200 ? "" : await r.text()}`));
  assert.deepEqual(statuses.filter((s) => !s.startsWith("200")), [], "every big request committed");
  assert.equal(await historyOf(db.sql, big.datasourceId), 48);
  assert.equal(await historyOf(db.sql, smallId), 20);
  // The byte cap (1,100,000 characters by default): never two ~1 MB requests in one statement.
  const largest = Math.max(...proxy.queries);
  assert.ok(largest > 900_000 && largest < 1_800_000, `the largest statement: ${largest} bytes`);
  console.log(
    `small requests beside 48 x 1 MB in one lane: median ${median(loaded).toFixed(1)} ms, alone ` +
      `${median(alone).toFixed(1)} ms (ratio ${(median(loaded) / median(alone)).toFixed(1)}), slowest ` +
      `${Math.max(...loaded).toFixed(0)} ms; ${proxy.queries.length} statements, the largest ${largest} bytes`,
  );
});

Deno.test("a batch that hits the statement timeout is retried one request at a time: all 200, each stored once", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // A trigger that makes any statement inserting more than one history row (a batch of several requests)
  // outlast the timeout, and holds a single row of temperature -1 long enough for others to queue behind it.
  // A sequence counts the slow batches: nextval survives the rollback.
  await db.sql.unsafe(`
    create sequence public.slow_batches;
    create function public.slow_batch() returns trigger language plpgsql as $$
    begin
      if (select count(*) from added) > 1 then
        perform nextval('public.slow_batches');
        perform pg_sleep(30);
      elsif exists (select 1 from added where value = '-1'::jsonb) then
        perform pg_sleep(0.8);
      end if;
      return null;
    end $$;
    create trigger slow_batch after insert on public.datasource_readings
      referencing new table as added for each statement execute function public.slow_batch();
  `);
  await using fn = createTestFunction(db.url, { INGEST_WRITE_CONCURRENCY: "1", INGEST_DB_TIMEOUT_MS: "2000" });
  const single = (t: number) => postRequest({ temperature: t }, { key: s.apiKey });
  const reading = (t: number) =>
    postRequest([{ observed_at: Date.now() - 1000, values: { temperature: t } }], {
      key: s.apiKey,
    });
  for (const request of [single, reading]) {
    const hold = fn.handle(request(-1));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const queued = await Promise.all(Array.from({ length: 6 }, (_, i) => fn.handle(request(i))));
    assert.equal((await hold).status, 200);
    assert.deepEqual(queued.map((r) => r.status), [200, 200, 200, 200, 200, 200], request.name);
  }
  assert.equal(await historyOf(db.sql, s.datasourceId), 14, "each request stored once");
  const [seen] = await db.sql`select last_value::int as n, is_called from public.slow_batches`;
  assert.ok(seen!.is_called && seen!.n >= 2, "both kinds of batch timed out as a whole, and were retried");
});
