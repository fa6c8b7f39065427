/**
 * datasource_history() (migration ..._dashboard_reads.sql) as a dashboard
 * calls it (`authenticated`, row level security deciding): every aggregate
 * against values computed here, bucket alignment, DoubleData fields, chart
 * snapshots, raw readings with a cursor, and an error naming each bad argument.
 */
import assert from "node:assert/strict";
import type { Sql } from "postgres";
import { createTestDatabase } from "../support/database.ts";
import { asRole, type Seeded, seedWorkspace } from "../support/seed.ts";

const T0 = Date.UTC(2026, 11, 1, 10, 0, 0); // 2026-12-01T10:00:00Z

/** Stores readings `[secondsAfterT0, values]` through the gateway write, as a backfill would. */
async function store(sql: Sql, s: Seeded, readings: [number, Record<string, unknown>][]) {
  const request = {
    datasource_id: s.datasourceId,
    key_id: s.keyId,
    readings: readings.map(([t, v]) => ({ t: T0 + t * 1000, v })), // epoch milliseconds, as the function passes them
  };
  const [row] = await sql`select public.ingest_write_readings(${sql.json([request] as never)}) as r`;
  assert.equal(row!.r.results[0].code, undefined, JSON.stringify(row!.r));
}

interface HistoryRow {
  data_key: string;
  time: string;
  value: unknown;
  readings: string;
  cursor: string | null;
}

function history(
  sql: Sql,
  userId: string,
  s: Seeded,
  args: {
    keys: string[];
    from?: number;
    to?: number;
    interval?: string | null;
    agg?: string;
    limit?: number;
    cursor?: string;
  },
): Promise<HistoryRow[]> {
  const from = new Date(T0 + (args.from ?? 0) * 1000).toISOString();
  const to = new Date(T0 + (args.to ?? 3600) * 1000).toISOString();
  return asRole(
    sql,
    { role: "authenticated", userId },
    (tx) =>
      tx`select * from public.datasource_history(${s.datasourceId}, ${args.keys}, ${from}, ${to},
      ${args.interval === undefined ? "1 minute" : args.interval}::interval, ${args.agg ?? "avg"},
      ${args.limit ?? 1000}, ${args.cursor ?? null})` as unknown as Promise<HistoryRow[]>,
  );
}

Deno.test("every aggregate over 1-minute buckets, aligned to UTC whatever p_from, against values computed here", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // Minute 0: 10, 20, 33 (and a DoubleData value); minute 2: 5. Minute 1 has none.
  await store(db.sql, s, [
    [5, { temperature: 10 }],
    [20, { temperature: 20, motor_stats: { rpm: 1000, vibration: 0.5 } }],
    [59, { temperature: 33 }],
    [150, { temperature: 5, motor_stats: { rpm: 1500, vibration: 0.7 } }],
  ]);
  const expected: Record<string, [unknown, unknown]> = {
    avg: [21, 5],
    min: [10, 5],
    max: [33, 5],
    sum: [63, 5],
    count: [3, 1],
    first: [10, 5],
    last: [33, 5],
  };
  for (const [agg, [minute0, minute2]] of Object.entries(expected)) {
    // p_from 10:00:30 is inside minute 0: the bucket still starts at 10:00:00, and holds the readings from p_from on.
    const all = await history(db.sql, s.viewer, s, { keys: ["temperature"], agg });
    assert.deepEqual(
      all.map((r) => [r.time, r.value]),
      [["2026-12-01T10:00:00.000Z", minute0], ["2026-12-01T10:02:00.000Z", minute2]],
      agg,
    );
  }
  const fromMid = await history(db.sql, s.viewer, s, { keys: ["temperature"], agg: "count", from: 30 });
  assert.deepEqual(fromMid.map((r) => [r.time, r.value]), [
    ["2026-12-01T10:00:00.000Z", 1],
    ["2026-12-01T10:02:00.000Z", 1],
  ]);
  const rpm = await history(db.sql, s.viewer, s, { keys: ["motor_stats.rpm"], agg: "max", interval: "1 hour" });
  assert.deepEqual(rpm.map((r) => [r.data_key, r.time, r.value, r.readings]), [
    ["motor_stats.rpm", "2026-12-01T10:00:00.000Z", 1500, "2"],
  ]);
});

Deno.test("charts: last gives each bucket's snapshot; none gives the readings with a cursor for the next page", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const chart = (n: number) => ({ machines: ["A", "B"], units_per_hour: [n, n + 1] });
  await store(db.sql, s, [0, 10, 20, 30, 40].map((t) => [t, { production_output: chart(t) }]));
  const [last] = await history(db.sql, s.viewer, s, { keys: ["production_output"], agg: "last" });
  assert.deepEqual(last!.value, chart(40));
  assert.equal(last!.readings, "5");
  assert.equal(
    (await history(db.sql, s.viewer, s, { keys: ["production_output"], agg: "avg" })).length,
    0,
    "not numbers",
  );

  const page1 = await history(db.sql, s.viewer, s, { keys: ["production_output"], agg: "none", limit: 2 });
  assert.deepEqual(page1.map((r) => r.value), [chart(0), chart(10)]);
  const page2 = await history(db.sql, s.viewer, s, {
    keys: ["production_output"],
    agg: "none",
    limit: 2,
    cursor: page1.at(-1)!.cursor!,
  });
  assert.deepEqual(page2.map((r) => [r.time, r.value]), [
    ["2026-12-01T10:00:20.000Z", chart(20)],
    ["2026-12-01T10:00:30.000Z", chart(30)],
  ]);
});

Deno.test("row level security: a member reads the history, a user of another workspace gets no rows", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await seedWorkspace(db.sql);
  await store(db.sql, s, [[0, { temperature: 1 }]]);
  assert.equal((await history(db.sql, s.viewer, s, { keys: ["temperature"] })).length, 1);
  assert.equal((await history(db.sql, other.viewer, s, { keys: ["temperature"] })).length, 0);
  assert.equal((await history(db.sql, s.outsider, s, { keys: ["temperature"], agg: "none" })).length, 0);
});

Deno.test("each bad argument is a 22023 error naming it; more than 1,500 buckets is refused", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const refused = async (args: Parameters<typeof history>[3], pattern: RegExp) => {
    await assert.rejects(history(db.sql, s.viewer, s, args), (error: { code?: string; message: string }) => {
      assert.equal(error.code, "22023", error.message);
      assert.match(error.message, pattern);
      return true;
    });
  };
  await refused({ keys: ["temperature"], agg: "median" }, /p_agg must be one of avg, .* got "median"/);
  await refused({ keys: [] }, /p_keys must name 1 to 20 DataKeys/);
  await refused({ keys: ["temperature"], from: 60, to: 60 }, /p_from must be before p_to/);
  await refused({ keys: ["temperature"], limit: 0 }, /p_limit must be from 1 to 10000, got 0/);
  await refused({ keys: ["temperature"], interval: null }, /p_interval must be a positive interval/);
  await refused({ keys: ["temperature"], interval: "1 month" }, /p_interval must be a positive interval/);
  await refused({ keys: ["temperature"], to: 25 * 3600, interval: "1 minute" }, /1501 buckets .* at most 1500/);
  await refused({ keys: ["temperature"], agg: "none", cursor: "yesterday" }, /p_cursor must be a cursor/);
  assert.equal(
    (await history(db.sql, s.viewer, s, { keys: ["temperature"], to: 1500 * 60 - 1, interval: "1 minute" })).length,
    0,
    "1,500 buckets are allowed: a day at 1 minute",
  );
});

Deno.test("hour buckets read the rollups of complete hours: the same values, and a late backfill counted at the next run", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  // Three hours of readings: 10:00 to 13:00 on 2026-12-01.
  await store(db.sql, s, [
    [60, { temperature: 1, motor_stats: { rpm: 100, vibration: 1 } }],
    [120, { temperature: 3 }],
    [3600 + 60, { temperature: 10, motor_stats: { rpm: 300, vibration: 1 } }],
    [7200 + 60, { temperature: 20 }],
  ]);
  const read = (keys: string[], agg = "avg") =>
    history(db.sql, s.viewer, s, { keys, agg, interval: "1 hour", to: 3 * 3600 }).then((rows) =>
      rows.map((r) => [r.data_key, r.time.slice(11, 13), r.value])
    );
  const expected = [["temperature", "10", 2], ["temperature", "11", 10], ["temperature", "12", 20]];
  assert.deepEqual(await read(["temperature"]), expected, "from the readings");
  // Received five minutes ago: the run (up to a minute before now) takes them.
  await db.sql`update public.datasource_readings set received_at = received_at - interval '5 minutes'`;
  const [run] = await db.sql`select private.roll_up_history() as written`;
  assert.equal(run!.written, 7, "temperature in three hours, motor_stats.rpm and motor_stats.vibration in two each");
  assert.deepEqual(await read(["temperature"]), expected, "from the rollups: the same");
  assert.deepEqual(await read(["motor_stats.rpm"], "max"), [["motor_stats.rpm", "10", 100], [
    "motor_stats.rpm",
    "11",
    300,
  ]]);
  // The rollups are what the read uses: change one and the answer follows.
  await db.sql`update private.history_hours set sum = sum + 100 where name = 'temperature' and hour = ${new Date(T0)}`;
  assert.deepEqual((await read(["temperature"]))[0], ["temperature", "10", 52]);
  await db.sql`update private.history_hours set sum = sum - 100 where name = 'temperature' and hour = ${new Date(T0)}`;

  // A late backfill into 11:00: counted once the next run has seen it.
  await store(db.sql, s, [[3600 + 120, { temperature: 30 }]]);
  assert.deepEqual((await read(["temperature"]))[1], ["temperature", "11", 10], "until the next run");
  await db.sql`select private.roll_up_history(now() + interval '2 minutes')`;
  assert.deepEqual((await read(["temperature"]))[1], ["temperature", "11", 20]);
});

Deno.test("the largest numbers JSON carries: sums past double precision neither fail the read nor stop the rollups", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const MAX = 1.7976931348623157e308;
  // Two readings of the largest double in one minute and one hour (their sum is past double precision), and an
  // ordinary DataKey beside them whose rollup must not be held up by them.
  await store(db.sql, s, [
    [60, { temperature: MAX, motor_stats: { rpm: 100, vibration: -MAX } }],
    [90, { temperature: MAX, motor_stats: { rpm: 300, vibration: -MAX } }],
  ]);
  const minute = await history(db.sql, s.viewer, s, { keys: ["temperature", "motor_stats.vibration"], agg: "avg" });
  assert.deepEqual(minute.map((r) => [r.data_key, r.value]), [["temperature", MAX], ["motor_stats.vibration", -MAX]]);
  const [sum] = await history(db.sql, s.viewer, s, { keys: ["temperature"], agg: "sum" });
  assert.equal(
    sum!.value,
    Infinity,
    "the exact sum: a JSON number past double precision, which JavaScript reads as Infinity",
  );

  await db.sql`update public.datasource_readings set received_at = received_at - interval '5 minutes'`;
  const [run] = await db.sql`select private.roll_up_history() as written`;
  assert.equal(run!.written, 3, "temperature, motor_stats.rpm and motor_stats.vibration: the hour is rolled up");
  const hour = (keys: string[], agg: string) =>
    history(db.sql, s.viewer, s, { keys, agg, interval: "1 hour" }).then((rows) => rows.map((r) => r.value));
  assert.deepEqual(await hour(["temperature"], "avg"), [MAX]);
  assert.deepEqual(await hour(["motor_stats.vibration"], "min"), [-MAX]);
  assert.deepEqual(await hour(["motor_stats.rpm"], "avg"), [200]);
});
