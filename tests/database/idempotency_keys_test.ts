/**
 * Idempotency-Key records in the write functions: ingest_write_batch (single
 * payloads) records, replays and refuses keys as ingest_write_readings does;
 * records expire after a day as new ones are recorded; the lookups stay index
 * probes however the table grew after a session planned them.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace } from "../support/seed.ts";

interface Item {
  observed_at?: string;
  superseded?: string[];
  replay?: Record<string, unknown>;
  code?: string;
}

/** The results of an ingest_write_batch call; a call answered without results stored every request, observed now. */
async function batch(sql: Sql, requests: unknown[]): Promise<Item[]> {
  const [row] = await sql`select public.ingest_write_batch(${sql.json(requests as never)}) as r`;
  const { received_at, results } = row!.r as { received_at: string; results?: Item[] };
  return results ?? requests.map(() => ({ observed_at: received_at, superseded: [] }));
}

async function readingsCount(sql: Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from public.datasource_readings`;
  return row!.n;
}

Deno.test("ingest_write_batch records, replays and refuses Idempotency-Keys as ingest_write_readings does", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const request = (key: string, hash: string, temperature: number) => ({
    datasource_id: s.datasourceId,
    key_id: s.keyId,
    values: { temperature },
    observed_at: null,
    idempotency_key: key,
    request_hash: hash,
  });

  const [first] = await batch(db.sql, [request("a", "h1", 1)]);
  assert.ok(first?.observed_at);
  assert.deepEqual(first.superseded, []);
  const [record] = await db.sql`select response from private.idempotency_keys where idempotency_key = 'a'`;
  // What a single payload's response needs (its `stored` are its own DataKeys).
  assert.deepEqual(Object.keys(record!.response).sort(), ["observed_at", "received_at", "superseded"]);
  assert.equal(Date.parse(record!.response.observed_at), Date.parse(first.observed_at));
  const stored = await readingsCount(db.sql);

  // The same key and hash: the recorded answer, nothing written; another hash: PT422.
  const [again] = await batch(db.sql, [request("a", "h1", 2)]);
  const [reused] = await batch(db.sql, [request("a", "h2", 3)]);
  assert.deepEqual(again, { replay: record!.response });
  assert.deepEqual(reused, { code: "PT422" });
  assert.equal(await readingsCount(db.sql), stored);

  // ingest_write_readings replays the record too.
  const [row] = await db.sql`select public.ingest_write_readings(${
    db.sql.json([{
      datasource_id: s.datasourceId,
      key_id: s.keyId,
      readings: [{ t: null, v: { temperature: 4 } }],
      idempotency_key: "a",
      request_hash: "h1",
    }] as never)
  }) as r`;
  assert.deepEqual((row!.r as { results: Item[] }).results[0], { replay: record!.response });

  // A malformed key is PT400 and a request without a key is stored, in the same call.
  const plain = { datasource_id: s.datasourceId, key_id: s.keyId, values: { temperature: 7 }, observed_at: null };
  const results = await batch(db.sql, [request("b", "h", 5), request("bad key", "h", 6), plain]);
  assert.ok(results[0]?.observed_at);
  assert.deepEqual(results[1], { code: "PT400" });
  assert.ok(results[2]?.observed_at);
  assert.equal(await readingsCount(db.sql), stored + 2);

  // A key twice in one call fails the call on the record's primary key: nothing of it is stored.
  await assert.rejects(batch(db.sql, [request("c", "h", 8), request("c", "h", 8), plain]), { code: "23505" });
  assert.equal(await readingsCount(db.sql), stored + 2);
  const keys = await db.sql`select idempotency_key from private.idempotency_keys order by idempotency_key`;
  assert.deepEqual(keys.map((k) => k.idempotency_key), ["a", "b"]);
});

Deno.test("the database expires Idempotency-Key records older than a day as it records new ones", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const age = async () =>
    (await db.sql`select idempotency_key from private.idempotency_keys where idempotency_key in ('old', 'recent')`)
      .map((r) => r.idempotency_key);
  const plant = () =>
    db.sql`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response, created_at)
      values (${s.keyId}, 'old', 'h', '{}', now() - interval '25 hours'),
             (${s.keyId}, 'recent', 'h', '{}', now() - interval '23 hours')
      on conflict do nothing`;
  await plant();

  // A call without a key leaves the records alone; each call that records a key expires the old ones.
  await db.sql`select public.ingest_write_batch(${
    db.sql.json([{ datasource_id: s.datasourceId, key_id: s.keyId, values: { temperature: 1 } }] as never)
  })`;
  assert.deepEqual((await age()).sort(), ["old", "recent"]);
  await db.sql`select public.ingest_write_batch(${
    db.sql.json([{
      datasource_id: s.datasourceId,
      key_id: s.keyId,
      values: { temperature: 2 },
      idempotency_key: "k1",
      request_hash: "h",
    }] as never)
  })`;
  assert.deepEqual(await age(), ["recent"]);

  await plant();
  await db.sql`select public.ingest_write_readings(${
    db.sql.json([{
      datasource_id: s.datasourceId,
      key_id: s.keyId,
      readings: [{ t: null, v: { temperature: 3 } }],
      idempotency_key: "k2",
      request_hash: "h",
    }] as never)
  })`;
  assert.deepEqual(await age(), ["recent"]);
});

Deno.test("key lookups never scan private.idempotency_keys, even with plans made while it was empty", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // One session: its cached plans are made by the first calls, on an empty table.
  const session = await db.sql.reserve();
  try {
    let n = 0;
    const write = async () => {
      n++;
      await session`select public.ingest_write_batch(${
        session.json([{
          datasource_id: s.datasourceId,
          key_id: s.keyId,
          values: { temperature: n },
          idempotency_key: `b${n}`,
          request_hash: "h",
        }] as never)
      })`;
      await session`select public.ingest_write_readings(${
        session.json([{
          datasource_id: s.datasourceId,
          key_id: s.keyId,
          readings: [{ t: null, v: { temperature: n } }],
          idempotency_key: `r${n}`,
          request_hash: "h",
        }] as never)
      })`;
    };
    await write();
    // The table grows under the cached plans (no analyze), then both functions look keys up again.
    await session`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response)
      select ${s.keyId}, 'bulk' || g, 'h', '{}' from generate_series(1, 20000) g`;
    for (let i = 0; i < 3; i++) await write();
    await session`select pg_stat_force_next_flush()`;
  } finally {
    session.release();
  }
  const [stats] = await db.sql`select seq_scan, idx_scan from pg_stat_user_tables
    where relid = 'private.idempotency_keys'::regclass`;
  assert.equal(Number(stats!.seq_scan), 0);
  assert.ok(Number(stats!.idx_scan) >= 8, `idx_scan ${stats!.idx_scan}`);
});
