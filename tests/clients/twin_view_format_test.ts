/** The twin view's plain-text readings: exact numbers, sub-keys and chart points in the widget's order. */
import assert from "node:assert/strict";
import { formatApprox, formatTime, formatValue, readingsOf, shortLabels } from "../../clients/twin_view/format.ts";
import type { TwinWidget } from "../../clients/twin_view/types.ts";

const widget = (widget_type: TwinWidget["widget_type"], settings: TwinWidget["settings"] = {}): TwinWidget => ({
  id: "w",
  name: "W",
  widget_type,
  data_key: "k",
  settings,
});
const single = widget("SingleData");
const double = widget("DoubleData", { primarySubKey: "rpm", secondarySubKey: "vibration" });
const bars = widget("BarChart", { labelsKey: "machines", valuesKey: "units_per_hour" });
const line = widget("LineChart", { labelsKey: "t", valuesKey: "v" });

Deno.test("SingleData reads as the number or string itself, never rounded or coerced", () => {
  assert.equal(formatValue(single, 42.5), "42.5");
  assert.equal(formatValue(single, 0.1 + 0.2), "0.30000000000000004");
  assert.equal(formatValue(single, "42"), "42");
  assert.equal(formatValue(single, "running"), "running");
  assert.equal(formatValue(single, undefined), "no value yet");
});

Deno.test("DoubleData reads as its two sub-keys in the widget's order, whatever the payload's order", () => {
  assert.equal(formatValue(double, { vibration: 0.75, rpm: 1500 }), "rpm 1500 · vibration 0.75");
  assert.deepEqual(readingsOf(double, { rpm: "idle", vibration: 0 }), [
    { label: "rpm", value: "idle" },
    { label: "vibration", value: 0 },
  ]);
});

Deno.test("charts read as label-value pairs; an empty chart says so", () => {
  const value = { machines: ["Machine A", "Machine B", 3], units_per_hour: [112, 124, 98] };
  assert.equal(formatValue(bars, value), "Machine A 112 · Machine B 124 · 3 98");
  assert.equal(formatValue(line, { t: [], v: [] }), "(empty)");
  assert.deepEqual(readingsOf(line, { t: ["a"], v: [1.5] }), [{ label: "a", value: 1.5 }]);
});

Deno.test("a value without the widget's shape is shown as JSON, not dropped", () => {
  assert.equal(readingsOf(double, { rpm: 1 }), null);
  assert.equal(readingsOf(bars, { machines: ["A"], units_per_hour: [1, 2] }), null);
  assert.equal(readingsOf(bars, { machines: ["A"], units_per_hour: ["1"] }), null);
  assert.equal(formatValue(double, [1, 2]), "[1,2]");
  assert.equal(formatValue(single, { a: 1 }), '{"a":1}');
});

Deno.test("observation times read in UTC with milliseconds, with the date when not today", () => {
  const now = new Date("2026-11-26T12:00:00Z");
  assert.equal(formatTime("2026-11-26T11:32:05.123Z", now), "11:32:05.123 UTC");
  assert.equal(formatTime("2026-11-26T12:32:05+01:00", now), "11:32:05.000 UTC");
  assert.equal(formatTime("2026-11-25T23:59:59.999Z", now), "2026-11-25 23:59:59.999 UTC");
  assert.equal(formatTime("not a time", now), "not a time");
});

Deno.test("chart columns: labels sharing their first words keep them on the first only", () => {
  assert.deepEqual(shortLabels(["Machine A", "Machine B", "Machine C"]), ["Machine A", "B", "C"]);
  assert.deepEqual(shortLabels(["Line 1 north", "Line 1 south"]), ["Line 1 north", "south"]);
  assert.deepEqual(shortLabels(["10:00", "10:05"]), ["10:00", "10:05"], "only whole words");
  assert.deepEqual(shortLabels(["Machine A", "Machine"]), ["Machine A", "Machine"], "a label that is all prefix");
  assert.deepEqual(shortLabels(["Machine A", "Machine  B"]), ["Machine A", "B"]);
  assert.deepEqual([shortLabels(["only"]), shortLabels([])], [["only"], []]);
});

Deno.test("computed numbers are shown to six significant digits", () => {
  assert.deepEqual([41.98374623, 1500, 0.1 + 0.2, -1e-7, Number.MAX_VALUE].map(formatApprox), [
    "41.9837",
    "1500",
    "0.3",
    "-1e-7",
    "1.79769e+308",
  ]);
});
