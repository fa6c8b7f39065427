/**
 * datasourceHistory() (clients/datasource_history.ts) as a dashboard calls it: the real supabase-js 2.119
 * through the REST stand-in, readings POSTed to the function by a gateway with their own times, row level
 * security deciding who sees them.
 */
import assert from "node:assert/strict";
import {
  datasourceHistory,
  HistoryError,
  type HistoryPoint,
  seriesByKey,
  type WidgetValue,
} from "../../clients/mod.ts";
import type { ChartValue } from "../../clients/watch_datasource.ts";
import { createTestDatabase } from "../support/database.ts";
import { type Seeded, seedWorkspace } from "../support/seed.ts";
import { startTestStack, type TestStack } from "../support/stack.ts";

/** Two hours ago, on the hour: inside every retention and the partitions the migrations create. */
const T0 = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 2 * 3_600_000;
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();
const WINDOW = { from: new Date(T0), to: new Date(T0 + 3_600_000) };

/** POSTs readings `[secondsAfterT0, values]` in one request, as a gateway sends what it buffered. */
async function store(stack: TestStack, s: Seeded, readings: [number, Record<string, unknown>][]) {
  const status = await stack.post(s.apiKey, readings.map(([t, values]) => ({ observed_at: at(t), values })));
  assert.equal(status, 200);
}

/** The points as `[dataKey, time, value, readings]`. */
function rows<V>(points: HistoryPoint<V>[]): [string, string, V, number][] {
  return points.map((p) => [p.dataKey, p.time, p.value, p.readings]);
}

/** The HistoryError `read` rejects with. */
async function refusal(read: Promise<unknown>): Promise<HistoryError> {
  const error = await read.then(() => null, (e: unknown) => e);
  assert.ok(error instanceof HistoryError, `expected a HistoryError, got ${error}`);
  return error;
}

Deno.test("datasourceHistory: numeric aggregates are numbers per bucket, DoubleData fields by data_key.sub_key", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  await store(stack, s, [
    [5, { temperature: 10 }],
    [20, { temperature: 20, motor_stats: { rpm: 1000, vibration: 0.5 } }],
    [59, { temperature: 33 }],
    [150, { temperature: 5, motor_stats: { rpm: 1500, vibration: 0.7 } }],
  ]);
  const token = await stack.tokenFor(s.viewer);
  const supabase = stack.client(() => token);

  const avg = await datasourceHistory(supabase, s.datasourceId, {
    ...WINDOW,
    keys: ["temperature", "motor_stats.rpm"],
    interval: "1 minute",
  });
  const series = seriesByKey(avg);
  assert.deepEqual([...series.keys()].sort(), ["motor_stats.rpm", "temperature"]);
  assert.deepEqual(rows(series.get("temperature")!), [
    ["temperature", at(0), 21, 3],
    ["temperature", at(120), 5, 1],
  ]);
  assert.deepEqual(rows(series.get("motor_stats.rpm")!), [
    ["motor_stats.rpm", at(0), 1000, 1],
    ["motor_stats.rpm", at(120), 1500, 1],
  ]);
  for (const point of avg) {
    assert.equal(typeof point.value, "number", JSON.stringify(point));
    assert.equal(point.cursor, null);
  }

  const max = await datasourceHistory(supabase, s.datasourceId, {
    ...WINDOW,
    keys: ["motor_stats.rpm"],
    interval: "1 hour",
    agg: "max",
  });
  assert.deepEqual(rows(max), [["motor_stats.rpm", at(0), 1500, 2]]);
  const count = await datasourceHistory(supabase, s.datasourceId, {
    from: at(30),
    to: at(3600),
    keys: ["temperature"],
    interval: "1 minute",
    agg: "count",
  });
  assert.deepEqual(rows(count), [["temperature", at(0), 1, 1], ["temperature", at(120), 1, 1]], "from p_from on");
});

Deno.test("datasourceHistory: none reads the readings themselves, a page at a time with the cursor", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const chart = (n: number) => ({ machines: ["A", "B"], units_per_hour: [n, n + 1] });
  await store(stack, s, [0, 10, 20, 30, 40].map((t) => [t, { production_output: chart(t) }]));
  const token = await stack.tokenFor(s.viewer);
  const supabase = stack.client(() => token);
  type Chart = ChartValue<"machines", "units_per_hour">;

  const pages: HistoryPoint<Chart>[][] = [];
  let cursor: string | undefined;
  do {
    const page = await datasourceHistory<"none", Chart>(supabase, s.datasourceId, {
      ...WINDOW,
      keys: ["production_output"],
      agg: "none",
      limit: 2,
      cursor,
    });
    pages.push(page);
    cursor = page.length === 2 ? page.at(-1)!.cursor! : undefined;
  } while (cursor && pages.length < 10);
  assert.deepEqual(pages.map((page) => page.map((p) => p.value.units_per_hour[0])), [[0, 10], [20, 30], [40]]);
  assert.deepEqual(
    pages.flat().map((p) => [p.time, p.value, p.readings]),
    [0, 10, 20, 30, 40].map((t) => [
      at(t),
      chart(t),
      1,
    ]),
  );
  assert.ok(pages.flat().every((p) => typeof p.cursor === "string" && p.cursor.length > 0));

  const [last, ...more] = await datasourceHistory<"last", Chart>(supabase, s.datasourceId, {
    ...WINDOW,
    keys: ["production_output"],
    interval: "1 hour",
    agg: "last",
  });
  assert.deepEqual([last?.value, last?.readings, more.length], [chart(40), 5, 0], "a bucket's snapshot");
});

Deno.test("datasourceHistory: a member of another workspace gets no points, a member gets them", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const other = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  await store(stack, s, [[5, { temperature: 10 }], [65, { temperature: 12 }]]);
  const read = async (userId: string) => {
    const token = await stack.tokenFor(userId);
    const points: HistoryPoint<WidgetValue>[] = await datasourceHistory(stack.client(() => token), s.datasourceId, {
      ...WINDOW,
      keys: ["temperature"],
      agg: "none",
    });
    return points.map((p) => p.value);
  };
  assert.deepEqual(await read(s.viewer), [10, 12]);
  assert.deepEqual(await read(other.viewer), []);
  assert.deepEqual(await read(other.owner), []);
  assert.deepEqual(await read(s.outsider), []);
});

Deno.test("datasourceHistory: a bad argument throws HistoryError 22023 with a message naming the argument", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const token = await stack.tokenFor(s.viewer);
  const supabase = stack.client(() => token);
  const base = { ...WINDOW, keys: ["temperature"], interval: "1 minute" };
  const cases: [string, Parameters<typeof datasourceHistory>[2], RegExp][] = [
    ["agg", { ...base, agg: "median" as never }, /p_agg must be one of avg, .*got "median"/],
    ["keys", { ...base, keys: [] }, /p_keys must name 1 to 20 DataKeys/],
    ["from/to", { ...base, from: WINDOW.to, to: WINDOW.from }, /p_from must be before p_to/],
    ["limit", { ...base, agg: "none", limit: 10_001 }, /p_limit must be from 1 to 10000, got 10001/],
    ["cursor", { ...base, cursor: "page 2" }, /p_cursor must be a cursor datasource_history returned/],
    ["no interval", { ...WINDOW, keys: ["temperature"] }, /p_interval must be a positive interval/],
    ["buckets", { ...base, from: new Date(T0 - 30 * 86_400_000) }, /p_interval 00:01:00 makes \d+ buckets/],
  ];
  for (const [what, query, message] of cases) {
    const error = await refusal(datasourceHistory(supabase, s.datasourceId, query));
    assert.equal(error.code, "22023", `${what}: ${error.message}`);
    assert.equal(error.name, "HistoryError");
    assert.match(error.message, message, what);
  }
});
