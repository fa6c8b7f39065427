/**
 * The broadcast budget (migration ..._realtime.sql) on the SQL
 * functions: whatever the writes and flushes, a subscriber applying every
 * message ends in the state of datasource_latest_values(); a flush that runs
 * twice sends once; a budget of 0 sends every commit.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { asRole, type Seeded, seedWorkspace, sqlState } from "../support/seed.ts";

interface Shown {
  value: unknown;
  observed_at: string;
}

/** Every `values` message of `s` in the order sent, applied as clients/watch_datasource.ts applies them. */
async function subscriberState(sql: Sql, s: Seeded): Promise<Record<string, Shown>> {
  const rows = await sql`select payload from realtime.messages
    where topic = ${`datasource:${s.datasourceId}`} and event = 'values' order by inserted_at, id`;
  const state: Record<string, Shown> = {};
  for (const { payload } of rows) {
    for (const [dataKey, value] of Object.entries(payload.values as Record<string, unknown>)) {
      const observed_at = payload.observed_at_by_key?.[dataKey] ?? payload.observed_at;
      if (!state[dataKey] || state[dataKey].observed_at <= observed_at) state[dataKey] = { value, observed_at };
    }
  }
  return state;
}

async function latestValues(sql: Sql, s: Seeded): Promise<Record<string, Shown>> {
  const rows = await sql`select data_key, value, to_char(observed_at at time zone 'UTC',
      'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as observed_at
    from public.datasource_values where datasource_id = ${s.datasourceId}`;
  return Object.fromEntries(rows.map((r) => [r.data_key, { value: r.value, observed_at: r.observed_at }]));
}

/** Moves the datasource's last broadcast an hour back: its interval has passed (the clock moved by the database). */
function intervalPassed(sql: Sql, s: Seeded) {
  return sql`update public.datasources set broadcast_sent_at = broadcast_sent_at - interval '1 hour',
    broadcast_due_at = broadcast_due_at - interval '1 hour' where id = ${s.datasourceId}`;
}

const write = fc.record({
  kind: fc.constantFrom("write", "batch"),
  keys: fc.subarray(["temperature", "motor_stats"], { minLength: 1 }),
  temperature: fc.integer({ min: -50, max: 50 }),
  rpm: fc.integer({ min: 0, max: 3000 }),
  // Seconds from a fixed time: equal, older and newer observations.
  at: fc.integer({ min: 0, max: 20 }),
});
const step = fc.oneof(
  { weight: 6, arbitrary: write },
  { weight: 2, arbitrary: fc.constant({ kind: "flush" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "interval passed" as const }) },
);

Deno.test("property: whatever the writes and flushes, the subscriber ends in the state of the latest values", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // One broadcast a second: within a run, every commit after the first is held unless the interval "passes".
  await db.sql`update public.datasources set broadcasts_per_second = 1`;
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
      await db.sql`delete from public.datasource_values`;
      await db.sql`delete from realtime.messages`;
      await db.sql`update public.datasources set broadcast_sent_at = null, broadcast_pending = '{}',
        broadcast_due_at = null`;
      for (const x of steps) {
        if (x.kind === "flush") await db.sql`select private.flush_broadcasts()`;
        else if (x.kind === "interval passed") await intervalPassed(db.sql, s);
        else {
          const values: Record<string, unknown> = {};
          if (x.keys.includes("temperature")) values.temperature = x.temperature;
          if (x.keys.includes("motor_stats")) values.motor_stats = { rpm: x.rpm, vibration: 1 };
          const observedAt = new Date(Date.UTC(2026, 11, 5, 10, 0, x.at)).toISOString();
          if (x.kind === "write") {
            await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json(values as never)},
              ${observedAt})`;
          } else {
            const request = { datasource_id: s.datasourceId, key_id: s.keyId, values, observed_at: observedAt };
            await db.sql`select public.ingest_write_batch(${db.sql.json([request] as never)})`;
          }
        }
      }
      // The trailing edge: once the interval has passed, the flush sends what is pending.
      await intervalPassed(db.sql, s);
      await db.sql`select private.flush_broadcasts()`;
      assert.deepEqual(await subscriberState(db.sql, s), await latestValues(db.sql, s));
    }),
    { numRuns: 60 },
  );
});

Deno.test("a held commit is pending until due; a flush sends it once, a second flush sends nothing", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`update public.datasources set broadcasts_per_second = 1`; // a second: room for a slow machine
  const post = (values: object) =>
    db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json(values as never)})`;
  const count = async () =>
    (await db.sql`select count(*)::int as n from realtime.messages where event = 'values'`)[0]!.n;
  await post({ temperature: 1 });
  await post({ motor_stats: { rpm: 2, vibration: 3 } });
  assert.equal(await count(), 1, "the second commit, within 1 s of the first, is held");
  const [ds] = await db.sql`select broadcast_pending, broadcast_due_at - broadcast_sent_at as wait
    from public.datasources where id = ${s.datasourceId}`;
  assert.deepEqual(ds!.broadcast_pending, ["motor_stats"]);
  assert.equal(ds!.wait, "00:00:01");
  const flush = async () => (await db.sql`select private.flush_broadcasts() as next`)[0]!.next as number | null;
  const next = await flush();
  assert.ok(next !== null && next > 0 && next <= 1, `not due yet: ${next} s to go`);
  assert.equal(await count(), 1);
  await intervalPassed(db.sql, s);
  await db.sql`select private.flush_broadcasts(), private.flush_broadcasts()`;
  assert.equal(await count(), 2, "sent once");
  const [last] = await db.sql`select payload from realtime.messages order by inserted_at desc limit 1`;
  assert.deepEqual(last!.payload.values, { motor_stats: { rpm: 2, vibration: 3 } });
  assert.equal(await flush(), null, "nothing pending");
});

Deno.test("a commit sent once the interval has passed carries the DataKeys left pending before it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`update public.datasources set broadcasts_per_second = 1`;
  const post = (values: object) =>
    db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json(values as never)})`;
  await post({ temperature: 1 });
  await post({ motor_stats: { rpm: 2, vibration: 3 } }); // held
  await intervalPassed(db.sql, s);
  await post({ temperature: 4 });
  const rows = await db.sql`select payload from realtime.messages order by inserted_at`;
  assert.deepEqual(rows.map((r) => r.payload.values), [
    { temperature: 1 },
    { temperature: 4, motor_stats: { rpm: 2, vibration: 3 } },
  ]);
  assert.deepEqual(Object.keys(rows[1]!.payload.observed_at_by_key).sort(), ["motor_stats", "temperature"]);
});

Deno.test("broadcasts_per_second = 0 sends every commit; editors may set it within 0-50, viewers not", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`update public.datasources set broadcasts_per_second = 0`;
  for (let i = 0; i < 5; i++) {
    await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json({ temperature: i })})`;
  }
  const [messages] = await db.sql`select count(*)::int as n from realtime.messages where event = 'values'`;
  assert.equal(messages!.n, 5);
  await assert.rejects(db.sql`update public.datasources set broadcasts_per_second = 51`, /check constraint/);
  const set = (userId: string) =>
    asRole(
      db.sql,
      { role: "authenticated", userId },
      (tx) => tx`update public.datasources set broadcasts_per_second = 10 where id = ${s.datasourceId} returning id`,
    );
  assert.equal((await set(s.viewer)).length, 0, "a viewer changes nothing");
  assert.equal((await set(s.editor)).length, 1, "an editor sets it");
  assert.equal(
    await sqlState(
      asRole(
        db.sql,
        { role: "authenticated", userId: s.editor },
        (tx) => tx`update public.datasources set broadcast_pending = '{x}' where id = ${s.datasourceId}`,
      ),
    ),
    "42501",
    "the broadcast state is the database's own",
  );
});

Deno.test("a held commit whose DataKeys are pending already leaves the datasource row alone: one row version a commit, not two", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`update public.datasources set broadcasts_per_second = 1`;
  /** Row versions the write made of the datasource row (PostgreSQL 15 flushes these counts lazily: a difference). */
  const updatesOf = (values: object) =>
    db.sql.begin(async (tx) => {
      const updates = async () =>
        (await tx`select n_tup_upd::int as n from pg_stat_xact_user_tables
          where schemaname = 'public' and relname = 'datasources'`)[0]!.n as number;
      const before = await updates();
      await tx`select public.ingest_write_batch(${
        tx.json([{ datasource_id: s.datasourceId, key_id: s.keyId, values }] as never)
      })`;
      return await updates() - before;
    });
  await updatesOf({ temperature: 1 }); // sent
  assert.equal(await updatesOf({ temperature: 2 }), 2, "held: last_ingested_at, then the pending DataKey");
  assert.equal(
    await updatesOf({ temperature: 3 }),
    1,
    "held again, temperature pending already: last_ingested_at only",
  );
  assert.equal(await updatesOf({ motor_stats: { rpm: 1, vibration: 2 } }), 2, "a new DataKey joins the pending ones");
  const [ds] = await db.sql`select broadcast_pending from public.datasources where id = ${s.datasourceId}`;
  assert.deepEqual(ds!.broadcast_pending, ["motor_stats", "temperature"]);
  await intervalPassed(db.sql, s);
  await db.sql`select private.flush_broadcasts()`;
  const [last] = await db.sql`select payload from realtime.messages order by inserted_at desc limit 1`;
  assert.deepEqual(last!.payload.values, { temperature: 3, motor_stats: { rpm: 1, vibration: 2 } });
});
