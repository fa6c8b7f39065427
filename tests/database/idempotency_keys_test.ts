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

  // Each malformed key field is refused alone: empty, not a string, over 255 characters, no request_hash.
  const { idempotency_key: _key, request_hash: _hash, ...bare } = request("x", "h", 9);
  const malformed = await batch(db.sql, [
    { ...bare, idempotency_key: "", request_hash: "h" },
    { ...bare, idempotency_key: 42, request_hash: "h" },
    { ...bare, idempotency_key: "k".repeat(256), request_hash: "h" },
    { ...bare, idempotency_key: "k" },
    plain,
  ]);
  assert.deepEqual(malformed.slice(0, 4), Array(4).fill({ code: "PT400" }));
  assert.ok(malformed[4]?.observed_at);
  assert.equal(await readingsCount(db.sql), stored + 3);

  // A key twice in one call fails the call on the record's primary key: nothing of it is stored.
  await assert.rejects(batch(db.sql, [request("c", "h", 8), request("c", "h", 8), plain]), { code: "23505" });
  assert.equal(await readingsCount(db.sql), stored + 3);
  const keys = await db.sql`select idempotency_key from private.idempotency_keys order by idempotency_key`;
  assert.deepEqual(keys.map((k) => k.idempotency_key), ["a", "b"]);
});

Deno.test("the write functions expire Idempotency-Key records older than a day as they record new ones", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const left = async () =>
    (await db.sql`select idempotency_key from private.idempotency_keys where idempotency_key in ('old', 'recent')`)
      .map((r) => r.idempotency_key).sort();
  const plant = () =>
    db.sql`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response, created_at)
      values (${s.keyId}, 'old', 'h', '{}', now() - interval '25 hours'),
             (${s.keyId}, 'recent', 'h', '{}', now() - interval '23 hours')
      on conflict do nothing`;
  const calls: Record<string, (n: number) => unknown> = {
    "without a key": (n) => [{ datasource_id: s.datasourceId, key_id: s.keyId, values: { temperature: n } }],
    ingest_write_batch: (n) => [{
      datasource_id: s.datasourceId,
      key_id: s.keyId,
      values: { temperature: n },
      idempotency_key: `b${n}`,
      request_hash: "h",
    }],
    ingest_write_readings: (n) => [{
      datasource_id: s.datasourceId,
      key_id: s.keyId,
      readings: [{ t: null, v: { temperature: n } }],
      idempotency_key: `r${n}`,
      request_hash: "h",
    }],
  };
  // One call in ten that records keys expires: 300 calls all miss with probability 0.9^300 < 1e-13.
  for (const [name, body] of Object.entries(calls)) {
    await plant();
    for (let n = 0; n < 300 && (await left()).includes("old"); n++) {
      const fn = name === "ingest_write_readings" ? "ingest_write_readings" : "ingest_write_batch";
      await db.sql`select ${db.sql(`public.${fn}`)}(${db.sql.json(body(n) as never)})`;
    }
    assert.deepEqual(await left(), name === "without a key" ? ["old", "recent"] : ["recent"], name);
  }
});

Deno.test("private.expire_idempotency_keys deletes the oldest expired records, up to its limit", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response, created_at)
    select ${s.keyId}::uuid, 'old' || g, 'h', '{}'::jsonb, now() - interval '24 hours' - g * interval '1 minute'
    from generate_series(1, 250) g
    union all select ${s.keyId}::uuid, 'recent', 'h', '{}', now() - interval '23 hours'`;
  // Recorded 1: up to max(200, 20) deleted, the oldest first.
  await db.sql`select private.expire_idempotency_keys(1)`;
  const rows = await db.sql`select idempotency_key from private.idempotency_keys order by created_at`;
  assert.deepEqual(
    rows.map((r) => r.idempotency_key),
    [...Array.from({ length: 50 }, (_, i) => `old${50 - i}`), "recent"],
  );
});

/** Writes five keyed requests through one write function, in the session given. */
type KeyedWriter = (session: Sql, s: { datasourceId: string; keyId: string }, n: number) => Promise<unknown>;

const keyedWriters: Record<string, KeyedWriter> = {
  ingest_write_batch: (session, s, n) =>
    session`select public.ingest_write_batch(${
      session.json(Array.from({ length: 5 }, (_, i) => ({
        datasource_id: s.datasourceId,
        key_id: s.keyId,
        values: { temperature: n },
        idempotency_key: `b${n}-${i}`,
        request_hash: "h",
      })) as never)
    })`,
  ingest_write_readings: (session, s, n) =>
    session`select public.ingest_write_readings(${
      session.json(Array.from({ length: 5 }, (_, i) => ({
        datasource_id: s.datasourceId,
        key_id: s.keyId,
        readings: [{ t: null, v: { temperature: n } }],
        idempotency_key: `r${n}-${i}`,
        request_hash: "h",
      })) as never)
    })`,
};

for (const [name, write] of Object.entries(keyedWriters)) {
  Deno.test(`${name} never scans private.idempotency_keys, even with plans made while it was empty`, async () => {
    await using db = await createTestDatabase();
    const s = await seedWorkspace(db.sql);
    // Statistics that say "empty", then one session whose cached plans are made by its first call.
    await db.sql`analyze private.idempotency_keys`;
    const session = await db.sql.reserve();
    try {
      await write(session, s, 0);
      // The table grows under the cached plans (no analyze), then the function looks keys up again.
      await session`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response)
        select ${s.keyId}, 'bulk' || g, 'h', '{}' from generate_series(1, 20000) g`;
      for (let n = 1; n <= 3; n++) await write(session, s, n);
      await session`select pg_stat_force_next_flush()`;
    } finally {
      session.release();
    }
    // Probes only: no scan of the table, and no index scan that reads it all (a hash join over the index would).
    const [stats] = await db.sql`select seq_scan, idx_scan, idx_tup_fetch from pg_stat_user_tables
      where relid = 'private.idempotency_keys'::regclass`;
    assert.equal(Number(stats!.seq_scan), 0);
    assert.ok(Number(stats!.idx_scan) >= 15, `idx_scan ${stats!.idx_scan}`);
    assert.ok(Number(stats!.idx_tup_fetch) < 1000, `idx_tup_fetch ${stats!.idx_tup_fetch}`);
  });
}

Deno.test("expiry never makes one write call wait for another's", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`insert into private.idempotency_keys (key_id, idempotency_key, request_hash, response, created_at)
    select ${s.keyId}, 'old' || g, 'h', '{}', now() - interval '25 hours' from generate_series(1, 500) g`;
  // The first expiry stays open; the second, as another write call would, deletes other records meanwhile.
  const first = await db.sql.reserve();
  const second = await db.sql.reserve();
  try {
    await first`begin`;
    await first`select private.expire_idempotency_keys(1)`;
    await second`set statement_timeout = '2s'`;
    await second`select private.expire_idempotency_keys(1)`;
    await first`commit`;
  } finally {
    first.release();
    second.release();
  }
  const [left] = await db
    .sql`select count(*)::int as n from private.idempotency_keys where idempotency_key like 'old%'`;
  assert.equal(left!.n, 500 - 2 * 200);
});
