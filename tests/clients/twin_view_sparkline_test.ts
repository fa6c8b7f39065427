/** The sparklines' series: history and live values merged into buckets, the window sliding, the path drawn. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bucketStart,
  createSeries,
  mergePoints,
  sparklinePath,
  type TrendPoint,
  trendRange,
} from "../../clients/twin_view/sparkline.ts";

const MINUTE = 60_000;
const T0 = Date.parse("2026-12-05T10:00:00.000Z");
const options = { windowMs: 60 * MINUTE, intervalMs: 30_000 };

Deno.test("buckets are aligned to the epoch, as datasource_history() bins them", () => {
  assert.equal(bucketStart(T0 + 29_999, 30_000), T0);
  assert.equal(bucketStart(T0 + 30_000, 30_000), T0 + 30_000);
  assert.equal(bucketStart(-1, 30_000), -30_000);
});

Deno.test("history buckets, then live values: a value in a new bucket is a new point, in the last bucket it moves it", () => {
  const series = createSeries(options);
  series.setHistory([
    { time: "2026-12-05T10:00:00.000Z", value: 10, readings: 2 },
    { time: "2026-12-05T10:10:00.000Z", value: 90, readings: 1 },
  ], T0 + 20 * MINUTE);
  assert.deepEqual(series.points().map((p) => [p.time, p.value]), [[T0, 10], [T0 + 10 * MINUTE, 90]]);
  series.add(T0 + 20 * MINUTE + 1000, 50);
  assert.equal(series.points().length, 3);
  series.add(T0 + 20 * MINUTE + 2000, 70);
  assert.deepEqual(series.points()[2], { time: T0 + 20 * MINUTE, value: 60, low: 50, high: 70, readings: 2 });
  // A live value in a history bucket (observed late) counts with the bucket's readings.
  series.add(T0 + 5000, 40);
  assert.deepEqual(series.points()[0], { time: T0, value: 20, low: 10, high: 40, readings: 3 });
});

Deno.test("live values that came before the history: those it counts (observed before its end) are dropped, the others kept", () => {
  const series = createSeries(options);
  series.add(T0 + 10 * MINUTE, 1); // stored before the history was read: the history has it
  series.add(T0 + 20 * MINUTE, 2); // observed after the read's end
  assert.equal(series.points().length, 2, "shown while the history is awaited");
  series.setHistory([{ time: T0 + 10 * MINUTE, value: 1, readings: 1 }], T0 + 15 * MINUTE);
  assert.deepEqual(series.points().map((p) => [p.value, p.readings]), [[1, 1], [2, 1]]);
  // Afterwards every live value counts, whatever its time.
  series.add(T0 + 10 * MINUTE, 3);
  assert.deepEqual(series.points()[0], { time: T0 + 10 * MINUTE, value: 2, low: 1, high: 3, readings: 2 });
});

Deno.test("a history read again replaces the first; live values it counts are dropped, later ones kept", () => {
  const series = createSeries(options);
  series.setHistory([{ time: T0, value: 1, readings: 1 }], T0 + MINUTE);
  series.add(T0 + 2 * MINUTE, 2);
  series.expectHistory();
  series.add(T0 + 4 * MINUTE, 4);
  series.setHistory(
    [{ time: T0, value: 1, readings: 1 }, { time: T0 + 2 * MINUTE, value: 2, readings: 1 }],
    T0 + 3 * MINUTE,
  );
  assert.deepEqual(series.points().map((p) => [p.value, p.readings]), [[1, 1], [2, 1], [4, 1]]);
});

Deno.test("the window slides: buckets that ended an hour ago are dropped, the one straddling its start stays", () => {
  const series = createSeries(options);
  series.setHistory([
    { time: T0, value: 1, readings: 1 },
    { time: T0 + 30_000, value: 2, readings: 1 },
    { time: T0 + 60_000, value: 3, readings: 1 },
  ], T0 + 2 * MINUTE);
  series.add(T0 + 90_000, 4);
  assert.equal(series.trim(T0 + 60 * MINUTE + 40_000), true);
  assert.deepEqual(series.points().map((p) => p.value), [2, 3, 4]);
  assert.equal(series.trim(T0 + 60 * MINUTE + 40_000), false);
  assert.equal(series.trim(T0 + 62 * MINUTE), true);
  assert.deepEqual(series.points(), []);
});

Deno.test("non-numbers and bad times are ignored, in history and live values", () => {
  const series = createSeries(options);
  series.setHistory([
    { time: "not a time", value: 1, readings: 1 },
    { time: T0, value: "x" as unknown as number, readings: 1 },
    { time: T0, value: 5, readings: 1 },
  ], T0);
  for (const value of [NaN, Infinity, "7" as unknown as number]) series.add(T0 + 1000, value);
  series.add(NaN, 3);
  assert.deepEqual(series.points().map((p) => [p.value, p.readings]), [[5, 1]]);
});

Deno.test("a bucket's mean never overflows and stays within its lowest and highest, whatever the numbers", () => {
  const max = Number.MAX_VALUE;
  const series = createSeries(options);
  series.setHistory([], 0);
  for (const value of [max, max, max, -max, max]) series.add(T0, value);
  const [point] = series.points();
  assert.ok(Number.isFinite(point!.value) && point!.value <= max, String(point!.value));
  assert.deepEqual([point!.low, point!.high, point!.readings], [-max, max, 5]);
  fc.assert(fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1 }), (values) => {
    const s = createSeries(options);
    s.setHistory([], 0);
    for (const v of values) s.add(T0, v);
    const p = s.points()[0]!;
    assert.ok(p.value >= p.low && p.value <= p.high, `${p.value} in ${p.low}..${p.high}`);
  }));
});

Deno.test("merging two buckets weighs their means by their readings", () => {
  const a: TrendPoint = { time: T0, value: 10, low: 5, high: 15, readings: 3 };
  const b: TrendPoint = { time: T0, value: 30, low: 30, high: 30, readings: 1 };
  assert.deepEqual(mergePoints(a, b), { time: T0, value: 15, low: 5, high: 30, readings: 4 });
});

Deno.test("the range spans the buckets' lows and highs and the finite extra numbers; none without any", () => {
  const points: TrendPoint[] = [
    { time: T0, value: 10, low: 8, high: 12, readings: 2 },
    { time: T0 + 30_000, value: 20, low: 20, high: 20, readings: 1 },
  ];
  assert.deepEqual(trendRange(points), { low: 8, high: 20 });
  assert.deepEqual(trendRange(points, [50, "x", NaN, undefined]), { low: 8, high: 50 });
  assert.deepEqual(trendRange([], [7]), { low: 7, high: 7 });
  assert.equal(trendRange([], ["x"]), null);
});

Deno.test("the path runs left to right in time, lowest mean at the bottom, highest at the top", () => {
  const points = [10, 30, 20].map((value, i) => ({
    time: T0 + i * 30 * MINUTE,
    value,
    low: value,
    high: value,
    readings: 1,
  }));
  const box = { from: T0, to: T0 + 60 * MINUTE, width: 100, height: 20, pad: 0 };
  assert.equal(sparklinePath(points, box), "M0.0 20.0L50.0 0.0L100.0 10.0");
  assert.equal(sparklinePath([], box), "");
  assert.equal(sparklinePath(points.slice(0, 1), box), "M0.0 10.0h0", "a single point: a dot in the middle");
  // Points outside the span are clamped to its edges; a flat series runs along the middle.
  const flat = [-1, 2].map((i) => ({ time: T0 + i * 60 * MINUTE, value: 5, low: 5, high: 5, readings: 1 }));
  assert.equal(sparklinePath(flat, { ...box, pad: 2 }), "M2.0 10.0L98.0 10.0");
});

Deno.test("any numbers (±1.8e308 too) draw a path of finite coordinates within the box", () => {
  const value = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324),
  );
  fc.assert(fc.property(fc.array(value, { minLength: 1, maxLength: 50 }), (values) => {
    const points = values.map((v, i) => ({ time: T0 + i * 1000, value: v, low: v, high: v, readings: 1 }));
    const path = sparklinePath(points, { from: T0, to: T0 + 50_000, width: 240, height: 32 });
    const numbers = path.match(/-?[\d.]+/g)!.map(Number);
    assert.ok(numbers.every((n) => Number.isFinite(n) && n >= 0 && n <= 240), path);
  }));
});
