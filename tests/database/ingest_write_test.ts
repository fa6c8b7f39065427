/** ingest_write: one transaction storing latest values, history and one broadcast. */
import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace, sqlState } from "../support/seed.ts";

function write(sql: Sql, s: { datasourceId: string; keyId: string }, values: unknown, observedAt?: Date) {
  return sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${sql.json(values as never)}, ${
    observedAt ?? null
  }) as r`
    .then((rows) => rows[0]!.r);
}

function writeBatch(sql: Sql, requests: object[]) {
  return sql`select public.ingest_write_batch(${sql.json(requests as never)}) as r`.then((rows) => rows[0]!.r);
}

Deno.test("upserts the latest value per DataKey and returns what it stored", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const first = await write(db.sql, s, { temperature: 42.5, motor_stats: { rpm: 1500, vibration: 0.75 } });
  assert.deepEqual(first.stored, ["motor_stats", "temperature"]);
  assert.deepEqual(first.superseded, []);
  await write(db.sql, s, { temperature: "hot" });
  const rows = await db.sql`select data_key, value from public.datasource_values order by data_key`;
  assert.deepEqual(rows.map((r) => [r.data_key, r.value]), [
    ["motor_stats", { rpm: 1500, vibration: 0.75 }],
    ["temperature", "hot"],
  ]);
});

Deno.test("keeps one history row per value when keep_history, none otherwise", async () => {
  await using db = await createTestDatabase();
  const kept = await seedWorkspace(db.sql, { keepHistory: true });
  const notKept = await seedWorkspace(db.sql, { keepHistory: false });
  for (const s of [kept, notKept]) {
    await write(db.sql, s, { temperature: 1 });
    await write(db.sql, s, { temperature: 2, motor_stats: { rpm: 1, vibration: 2 } });
  }
  const count = async (id: string) =>
    (await db.sql`select count(*)::int as n from public.datasource_readings where datasource_id = ${id}`)[0]!.n;
  assert.equal(await count(kept.datasourceId), 3);
  assert.equal(await count(notKept.datasourceId), 0);
  const [latest] = await db.sql`select value from public.datasource_values
    where datasource_id = ${notKept.datasourceId} and data_key = 'temperature'`;
  assert.equal(latest!.value, 2);
});

Deno.test("an older observation never overwrites a newer one, but still enters history", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const now = Date.now();
  await write(db.sql, s, { temperature: "new" }, new Date(now));
  const late = await write(db.sql, s, { temperature: "old" }, new Date(now - 60_000));
  assert.deepEqual(late.superseded, ["temperature"]);
  const [latest] = await db.sql`select value, observed_at from public.datasource_values where data_key = 'temperature'`;
  assert.equal(latest!.value, "new");
  assert.equal(latest!.observed_at.getTime(), now);
  const history = await db.sql`select value from public.datasource_readings order by observed_at`;
  assert.deepEqual(history.map((r) => r.value), ["old", "new"]);
});

Deno.test("sets last_ingested_at, and last_used_at at most once a minute", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const r = await write(db.sql, s, { temperature: 1 });
  const [ds] = await db.sql`select last_ingested_at from public.datasources where id = ${s.datasourceId}`;
  assert.equal(ds!.last_ingested_at.toISOString(), new Date(r.received_at).toISOString());
  const [k1] = await db.sql`select last_used_at from public.datasource_api_keys where id = ${s.keyId}`;
  assert.ok(k1!.last_used_at);
  await write(db.sql, s, { temperature: 2 });
  const [k2] = await db.sql`select last_used_at from public.datasource_api_keys where id = ${s.keyId}`;
  assert.equal(k2!.last_used_at.getTime(), k1!.last_used_at.getTime(), "updated again within a minute");
  await db.sql`update public.datasource_api_keys set last_used_at = now() - interval '2 minutes' where id = ${s.keyId}`;
  await write(db.sql, s, { temperature: 3 });
  const [k3] = await db
    .sql`select last_used_at > now() - interval '10 seconds' as fresh from public.datasource_api_keys where id = ${s.keyId}`;
  assert.equal(k3!.fresh, true);
});

Deno.test("sends exactly one private broadcast per call on datasource:<id> with the stored values", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const values = { temperature: 42.5, production_output: { machines: ["A"], units_per_hour: [1] } };
  await write(db.sql, s, values);
  const messages = await db.sql`select topic, event, private, extension, payload from realtime.messages`;
  assert.equal(messages.length, 1);
  assert.equal(messages[0]!.topic, `datasource:${s.datasourceId}`);
  assert.equal(messages[0]!.event, "values");
  assert.equal(messages[0]!.private, true);
  assert.equal(messages[0]!.extension, "broadcast");
  assert.deepEqual(messages[0]!.payload.values, values);
  assert.equal(messages[0]!.payload.datasource_id, s.datasourceId);
});

Deno.test("an error rolls everything back: unknown DataKey, disabled datasource, wrong scope, wrong datasource", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await seedWorkspace(db.sql);
  const readOnly = await seedWorkspace(db.sql, { scopes: ["ingest:read"] });
  const cases: [string, () => Promise<unknown>, string][] = [
    ["unknown DataKey", () => write(db.sql, s, { temperature: 1, nope: 2 }), "PT400"],
    ["empty object", () => write(db.sql, s, {}), "PT400"],
    ["not an object", () => write(db.sql, s, [1]), "PT400"],
    [
      "key of another datasource",
      () => write(db.sql, { datasourceId: s.datasourceId, keyId: other.keyId }, { temperature: 1 }),
      "PT401",
    ],
    ["read-only key", () => write(db.sql, readOnly, { temperature: 1 }), "PT403"],
  ];
  for (const [label, query, expected] of cases) assert.equal(await sqlState(query()), expected, label);
  await db.sql`update public.datasources set enabled = false where id = ${s.datasourceId}`;
  assert.equal(await sqlState(write(db.sql, s, { temperature: 1 })), "PT403", "disabled datasource");

  const counts = await db.sql`select
    (select count(*)::int from public.datasource_values) as v,
    (select count(*)::int from public.datasource_readings) as r,
    (select count(*)::int from realtime.messages) as m,
    (select count(*)::int from public.datasources where last_ingested_at is not null) as d`;
  assert.deepEqual({ ...counts[0] }, { v: 0, r: 0, m: 0, d: 0 });
});

Deno.test("a failure after the first insert leaves nothing behind", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // A trigger that fails on the history insert, after the latest values were upserted.
  await db.sql.unsafe(`
    create function public.fail_history() returns trigger language plpgsql set search_path = '' as
    $$ begin raise exception 'disk full' using errcode = '53100'; end $$;
    create trigger fail_history before insert on public.datasource_readings for each row execute function public.fail_history();
  `);
  assert.equal(await sqlState(write(db.sql, s, { temperature: 1 })), "53100");
  const [counts] = await db.sql`select (select count(*)::int from public.datasource_values) as v,
    (select count(*)::int from realtime.messages) as m`;
  assert.deepEqual({ ...counts }, { v: 0, m: 0 });
});

Deno.test("ingest_write_batch: one commit for many requests, each request all-or-nothing", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await seedWorkspace(db.sql);
  const request = (keyId: string, values: Record<string, unknown>) => ({
    datasource_id: s.datasourceId,
    key_id: keyId,
    values,
  });
  const { results } = await writeBatch(db.sql, [
    request(s.keyId, { temperature: 1 }),
    request(other.keyId, { temperature: 2 }),
    request(s.keyId, { temperature: 3, nope: 1 }),
    request(s.keyId, { motor_stats: { rpm: 1, vibration: 2 } }),
  ]);
  assert.deepEqual(results.map((r: { code?: string }) => r.code ?? "ok"), ["ok", "PT401", "PT400", "ok"]);
  const history = await db.sql`select data_key, value from public.datasource_readings order by id`;
  assert.deepEqual(history.map((r) => [r.data_key, r.value]), [["temperature", 1], ["motor_stats", {
    rpm: 1,
    vibration: 2,
  }]]);
  const messages = await db.sql`select topic, payload from realtime.messages`;
  assert.equal(messages.length, 1, "one broadcast per datasource of the batch");
  assert.equal(messages[0]!.topic, `datasource:${s.datasourceId}`);
  assert.deepEqual(messages[0]!.payload.values, { temperature: 1, motor_stats: { rpm: 1, vibration: 2 } });
});

Deno.test("ingest_write_batch: only received_at when every request was stored, observed then, superseding nothing", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const request = { datasource_id: s.datasourceId, key_id: s.keyId, values: { temperature: 1 } };

  const usual = await writeBatch(db.sql, [request, { ...request, values: { temperature: 2 } }]);
  assert.deepEqual(Object.keys(usual), ["received_at"]);
  const [stored] = await db
    .sql`select value, observed_at::text = received_at::text as now from public.datasource_values`;
  assert.deepEqual([stored!.value, stored!.now], [2, true]);

  const refused = await writeBatch(db.sql, [request, { ...request, key_id: crypto.randomUUID() }]);
  assert.deepEqual(refused.results.map((r: { code?: string }) => r.code ?? "ok"), ["ok", "PT401"]);
  const past = await writeBatch(db.sql, [request, { ...request, observed_at: "2020-01-01T00:00:00Z" }]);
  assert.deepEqual(past.results.map((r: { superseded: string[] }) => r.superseded), [[], ["temperature"]]);
});

Deno.test("ingest_write_batch: within a batch the newest observation wins, then the later request", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const request = (value: number, observedAt?: string) => ({
    datasource_id: s.datasourceId,
    key_id: s.keyId,
    values: { temperature: value },
    ...(observedAt ? { observed_at: observedAt } : {}),
  });
  const { results } = await writeBatch(db.sql, [
    request(1, "2026-01-01T00:00:02Z"),
    request(2, "2026-01-01T00:00:01Z"),
    request(3, "2026-01-01T00:00:02Z"),
  ]);
  const superseded = results.map((r: { superseded: string[] }) => r.superseded);
  assert.deepEqual(superseded, [[], ["temperature"], []]);
  const [latest] = await db.sql`select value from public.datasource_values where data_key = 'temperature'`;
  assert.equal(latest!.value, 3);
  const [history] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(history!.n, 3);
});

Deno.test("deleting a datasource deletes its history (and its workspace's deletion does too)", async () => {
  await using db = await createTestDatabase();
  const gone = await seedWorkspace(db.sql);
  const kept = await seedWorkspace(db.sql);
  for (const s of [gone, kept]) await write(db.sql, s, { temperature: 1, motor_stats: { rpm: 1, vibration: 2 } });
  await db.sql`delete from public.datasources where id = ${gone.datasourceId}`;
  const rows = await db.sql`select datasource_id, count(*)::int as n from public.datasource_readings group by 1`;
  assert.deepEqual(rows.map((r) => [r.datasource_id, r.n]), [[kept.datasourceId, 2]]);
  await db.sql`delete from public.workspaces where id = ${kept.workspaceId}`;
  const [left] = await db.sql`select count(*)::int as n from public.datasource_readings`;
  assert.equal(left!.n, 0);
});

Deno.test("a datasource deleted while a write waits for its lock: that request is a PT401, the others are stored", async () => {
  await using db = await createTestDatabase();
  const gone = await seedWorkspace(db.sql);
  const kept = await seedWorkspace(db.sql);
  const request = (s: { datasourceId: string; keyId: string }) => ({
    datasource_id: s.datasourceId,
    key_id: s.keyId,
    values: { temperature: 1 },
  });
  // Its own connection: the write below must start while the delete is not yet committed.
  const deleter = postgres(db.url, { max: 1 });
  try {
    await deleter`begin`;
    await deleter`delete from public.datasources where id = ${gone.datasourceId}`;
    const writers = [postgres(db.url, { max: 1 }), postgres(db.url, { max: 1 })];
    try {
      const batch = writers[0]!`select public.ingest_write_batch(${
        writers[0]!.json([request(gone), request(kept)])
      }) as r`.execute(); // postgres.js sends a query once awaited: send it now
      const single = sqlState(write(writers[1]!, gone, { temperature: 2 }));
      await waitForLockWaits(db.sql, 2);
      await deleter`commit`;
      const [row] = await batch;
      assert.deepEqual(row!.r.results.map((r: { code?: string }) => r.code ?? "ok"), ["PT401", "ok"]);
      assert.equal(await single, "PT401");
    } finally {
      await Promise.all(writers.map((w) => w.end({ timeout: 1 })));
    }
  } finally {
    await deleter.end({ timeout: 1 });
  }
  const rows = await db.sql`select datasource_id from public.datasource_readings`;
  assert.deepEqual(rows.map((r) => r.datasource_id), [kept.datasourceId]);
});

/** Waits until `count` sessions wait for a row lock. */
async function waitForLockWaits(sql: Sql, count: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [row] = await sql`select count(*)::int as n from pg_stat_activity
      where datname = current_database() and wait_event_type = 'Lock'`;
    if (row!.n >= count) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`expected ${count} sessions waiting for a lock`);
}
