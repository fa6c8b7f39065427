/** The datasource's trends: the series its widgets draw, the history calls, and which live values count. */
import assert from "node:assert/strict";
import {
  createTrends,
  historyCalls,
  loadTrendHistory,
  type TrendHistoryPoint,
  trendKeys,
  trendNumbers,
} from "../../clients/twin_view/trends.ts";
import type { TwinWidget } from "../../clients/twin_view/types.ts";

const widget = (widget_type: TwinWidget["widget_type"], data_key: string, settings = {}): TwinWidget => ({
  id: crypto.randomUUID(),
  name: data_key,
  widget_type,
  data_key,
  settings,
});
const temperature = widget("SingleData", "temperature");
const motor = widget("DoubleData", "motor_stats", { primarySubKey: "rpm", secondarySubKey: "vibration" });
const chart = widget("BarChart", "production_output", { labelsKey: "machines", valuesKey: "units_per_hour" });
const T0 = Date.parse("2026-12-05T10:00:00.000Z");
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

Deno.test("SingleData draws its DataKey, DoubleData both fields as data_key.sub_key, charts nothing", () => {
  assert.deepEqual(trendKeys(temperature), ["temperature"]);
  assert.deepEqual(trendKeys(motor), ["motor_stats.rpm", "motor_stats.vibration"]);
  assert.deepEqual(trendKeys(chart), []);
  assert.deepEqual(trendKeys(widget("DoubleData", "half", { primarySubKey: "a" })), ["half.a"]);
});

Deno.test("only finite numbers feed a series: strings and other shapes do not", () => {
  assert.deepEqual(trendNumbers(temperature, 21.5), [["temperature", 21.5]]);
  assert.deepEqual(trendNumbers(temperature, "hot"), []);
  assert.deepEqual(trendNumbers(motor, { rpm: 1500, vibration: "low" }), [["motor_stats.rpm", 1500]]);
  assert.deepEqual(trendNumbers(motor, 3), []);
  assert.deepEqual(trendNumbers(chart, { machines: ["A"], units_per_hour: [1] }), []);
});

Deno.test("one history call for up to 20 series, more calls beyond", () => {
  const keys = Array.from({ length: 45 }, (_, i) => `k${i}`);
  assert.deepEqual(historyCalls(keys.slice(0, 3)), [["k0", "k1", "k2"]]);
  assert.deepEqual(historyCalls(keys).map((call) => call.length), [20, 20, 5]);
  assert.deepEqual(historyCalls([]), []);
});

Deno.test("the history is the hour before the page opened; each series takes its own points, once though widgets share it", () => {
  const trends = createTrends([temperature, motor, chart, widget("SingleData", "temperature")], T0);
  assert.deepEqual(trends.keys, ["temperature", "motor_stats.rpm", "motor_stats.vibration"]);
  assert.deepEqual(trends.history, { from: T0 - 3_600_000, to: T0 });
  trends.setHistory(trends.keys, [
    { dataKey: "temperature", time: at(-50), value: 10, readings: 1 },
    { dataKey: "motor_stats.rpm", time: at(-50), value: 1010, readings: 1 },
    { dataKey: "motor_stats.rpm", time: at(-40), value: 1090, readings: 1 },
  ], T0);
  assert.deepEqual(trends.series("temperature")!.points().map((p) => p.value), [10]);
  assert.deepEqual(trends.series("motor_stats.rpm")!.points().map((p) => p.value), [1010, 1090]);
  assert.deepEqual(trends.series("motor_stats.vibration")!.points(), []);
  assert.equal(trends.series("production_output"), undefined);
  // A live value of the shared DataKey is one point, not one per widget.
  trends.addValues({ temperature: { value: 30, observed_at: at(1) } }, ["temperature"], false);
  assert.deepEqual(trends.series("temperature")!.points().map((p) => [p.value, p.readings]), [[10, 1], [30, 1]]);
});

Deno.test("the first read's values are the history's unless observed after it; later changes all count", () => {
  const trends = createTrends([temperature, motor], T0);
  trends.setHistory(trends.keys, [{ dataKey: "temperature", time: at(-10), value: 50, readings: 1 }], T0);
  const values = {
    temperature: { value: 50, observed_at: at(-10) },
    motor_stats: { value: { rpm: 1200, vibration: 0.5 }, observed_at: at(0.5) },
  };
  trends.addValues(values, ["temperature", "motor_stats"], true);
  assert.deepEqual(trends.series("temperature")!.points().map((p) => p.readings), [1], "not counted twice");
  assert.deepEqual(trends.series("motor_stats.rpm")!.points().map((p) => p.value), [1200]);
  // Unchanged DataKeys are not added again.
  trends.addValues({ ...values, temperature: { value: 60, observed_at: at(1) } }, ["temperature"], false);
  assert.deepEqual(trends.series("temperature")!.points().map((p) => p.value), [50, 60]);
  assert.deepEqual(trends.series("motor_stats.rpm")!.points().map((p) => p.readings), [1]);
  assert.equal(trends.hasPoints(), true);
  assert.equal(trends.trim(T0 + 3_600_000), true, "the history's bucket of 10 minutes before");
  assert.equal(trends.hasPoints(), true);
  assert.equal(trends.trim(T0 + 62 * 60_000), true);
  assert.equal(trends.hasPoints(), false);
});

Deno.test("after a reconnection the hour is read again: what came meanwhile is in it, an older read's answer is ignored", () => {
  const trends = createTrends([temperature], T0);
  trends.setHistory(["temperature"], [{ dataKey: "temperature", time: at(-10), value: 50, readings: 1 }], T0);
  trends.addValues({ temperature: { value: 60, observed_at: at(1) } }, ["temperature"], false);
  // The connection dropped; 5 was posted at minute 3, then 99 at minute 4, which the catch-up read brings.
  trends.addValues({ temperature: { value: 99, observed_at: at(4) } }, ["temperature"], false);
  const again = trends.reread(T0 + 5 * 60_000);
  assert.deepEqual(again, { from: T0 + 5 * 60_000 - 3_600_000, to: T0 + 5 * 60_000 });
  trends.addValues({ temperature: { value: 70, observed_at: at(6) } }, ["temperature"], false);
  trends.setHistory(["temperature"], [{ dataKey: "temperature", time: at(-10), value: 1, readings: 1 }], T0);
  assert.equal(trends.series("temperature")!.points()[0]!.value, 50, "the first read's late answer is ignored");
  trends.setHistory(
    ["temperature"],
    [50, 60, 5, 99].map((value, i) => ({
      dataKey: "temperature",
      time: at([-10, 1, 3, 4][i]!),
      value,
      readings: 1,
    })),
    again.to,
  );
  assert.deepEqual(trends.series("temperature")!.points().map((p) => [p.value, p.readings]), [
    [50, 1],
    [60, 1],
    [5, 1],
    [99, 1],
    [70, 1],
  ]);
});

Deno.test("the history is read in one call; a refused call is read again per series, and only the failing ones go without", async () => {
  const trends = createTrends([temperature, motor], T0);
  const calls: string[][] = [];
  const failed = await loadTrendHistory(trends, (keys, from, to) => {
    calls.push(keys);
    assert.deepEqual([from, to], [T0 - 3_600_000, T0]);
    // As datasource_history() does when a bucket's sum overflows: the whole call fails.
    if (keys.includes("motor_stats.rpm")) return Promise.reject(new Error("value out of range: overflow"));
    return Promise.resolve(
      keys.map((dataKey): TrendHistoryPoint => ({ dataKey, time: at(-5), value: 1, readings: 1 })),
    );
  }, trends.history);
  assert.deepEqual(calls, [
    ["temperature", "motor_stats.rpm", "motor_stats.vibration"],
    ["temperature"],
    ["motor_stats.rpm"],
    ["motor_stats.vibration"],
  ]);
  assert.deepEqual(failed, ["motor_stats.rpm (value out of range: overflow)"]);
  assert.deepEqual(trends.keys.map((key) => trends.series(key)!.points().length), [1, 0, 1]);
});
