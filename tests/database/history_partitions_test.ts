/**
 * The partitioned history (migration ..._values_and_history.sql): readings
 * land in their day's partition (an old backfill in the default one until
 * its day is created), ids come from one sequence across partitions, and
 * private.maintain_history() keeps what each retention says, with the clock
 * moved by the database (`p_now`), the same when run twice.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { type Seeded, seedWorkspace } from "../support/seed.ts";

const DAY = 24 * 3600 * 1000;

/** Writes `temperature` observed `daysAgo` days before now, as a device would. */
function writeAt(sql: Sql, s: Seeded, daysAgo: number, temperature = daysAgo) {
  const at = new Date(Date.now() - daysAgo * DAY).toISOString();
  return sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${sql.json({ temperature })}, ${at})`;
}

/** The partition each of `s`'s readings is in, by value. */
async function partitionsOf(sql: Sql, s: Seeded): Promise<Record<string, string>> {
  const rows = await sql`select r.value::text as v, r.tableoid::regclass::text as p
    from public.datasource_readings r where r.datasource_id = ${s.datasourceId}`;
  return Object.fromEntries(rows.map((r) => [r.v, r.p]));
}

function maintain(sql: Sql, nowDaysAhead = 0, batch = 10000) {
  const now = new Date(Date.now() + nowDaysAhead * DAY).toISOString();
  return sql`select private.maintain_history(${now}, ${batch}) as r`.then(([row]) => row!.r);
}

Deno.test("the history is partitioned by day of observed_at, its ids from a sequence of its own", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const daysAgo of [0, 1, 40, 400]) await writeAt(db.sql, s, daysAgo);
  const [table] = await db.sql`select c.relkind as kind, pg_get_partkeydef(c.oid) as key
    from pg_class c where c.oid = 'public.datasource_readings'::regclass`;
  assert.deepEqual({ ...table }, { kind: "p", key: "RANGE (observed_at)" });
  const ids = await db.sql`select id::int as id from public.datasource_readings order by received_at, id`;
  assert.deepEqual(ids.map((r) => r.id), [1, 2, 3, 4], "one sequence across the partitions, in the order of writing");
});

Deno.test("readings land in their day's partition; an old backfill in the default one, moved when its day is created", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await writeAt(db.sql, s, 0, 1);
  await writeAt(db.sql, s, 30, 2);
  const day = (daysAgo: number) => {
    const d = new Date(Date.now() - daysAgo * DAY);
    return `private.datasource_readings_y${d.toISOString().slice(0, 4)}m${d.toISOString().slice(5, 7)}d${
      d.toISOString().slice(8, 10)
    }`;
  };
  assert.deepEqual(await partitionsOf(db.sql, s), { "1": day(0), "2": "private.datasource_readings_default" });
  const [made] = await db.sql`select private.create_history_partition(${
    new Date(Date.now() - 30 * DAY).toISOString().slice(0, 10)
  }::date) as created`;
  assert.equal(made!.created, true);
  assert.deepEqual(await partitionsOf(db.sql, s), { "1": day(0), "2": day(30) });
});

Deno.test("maintain_history: partitions a week ahead, twice the same as once", async () => {
  await using db = await createTestDatabase();
  const first = await maintain(db.sql, 1); // tomorrow: one more day ahead
  assert.deepEqual(first, { created: 1, dropped: 0, deleted: 0 });
  assert.deepEqual(await maintain(db.sql, 1), { created: 0, dropped: 0, deleted: 0 });
  const [partitions] = await db.sql`select count(*)::int as n from pg_inherits
    where inhparent = 'public.datasource_readings'::regclass`;
  assert.equal(partitions!.n, 1 + 10, "the default partition and the days from yesterday to 8 days ahead");
});

Deno.test("retention: whole days are dropped past the longest retention, shorter ones delete rows in bounded batches", async () => {
  await using db = await createTestDatabase();
  const long = await seedWorkspace(db.sql); // the default: 90 days
  const short = await seedWorkspace(db.sql);
  await db.sql`update public.datasources set history_days = 10 where id = ${short.datasourceId}`;
  const capped = await seedWorkspace(db.sql);
  await db.sql`insert into public.workspace_limits (workspace_id, history_days_max) values (${capped.workspaceId}, 5)`;
  for (const s of [long, short, capped]) {
    for (let d = 0; d < 3; d++) await writeAt(db.sql, s, d);
  }
  const count = async (s: Seeded) =>
    (await db.sql`select count(*)::int as n from public.datasource_readings where datasource_id = ${s.datasourceId}`)[
      0
    ]!
      .n;

  // 4 days on: `capped` (5 days) loses its two oldest readings, in batches of one row.
  assert.deepEqual(await maintain(db.sql, 4, 1), { created: 4, dropped: 0, deleted: 1 });
  assert.deepEqual(await maintain(db.sql, 4, 1), { created: 0, dropped: 0, deleted: 1 });
  assert.deepEqual(await maintain(db.sql, 4, 1), { created: 0, dropped: 0, deleted: 0 });
  assert.deepEqual([await count(long), await count(short), await count(capped)], [3, 3, 1]);

  // 92 days on: every reading is past every retention; the partitions that held them go whole.
  const result = await maintain(db.sql, 92);
  assert.ok(result.dropped >= 3, JSON.stringify(result));
  assert.deepEqual([await count(long), await count(short), await count(capped)], [0, 0, 0]);
  const [first] = await db.sql`select min(c.relname) as oldest from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.datasource_readings'::regclass and c.relname <> 'datasource_readings_default'`;
  const limit = new Date(Date.now() + 92 * DAY - 91 * DAY).toISOString().slice(0, 10).replaceAll("-", "");
  assert.ok(first!.oldest.replace(/\D/g, "") >= limit, `${first!.oldest} is within 90 days of the moved clock`);
});
