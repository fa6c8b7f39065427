/**
 * One sparkline's numbers: a series (a SingleData DataKey, or a DoubleData
 * field such as `motor_stats.rpm`) over a sliding window, in buckets of a
 * fixed interval aligned as `datasource_history()` aligns them (to
 * 1970-01-01T00:00:00Z), merged from the history read when the page opens
 * and the live values after it; and its drawing as a path that SVG and
 * canvases (`Path2D`) both take.
 *
 * Live values go into their bucket (mean, lowest, highest, count): a tab kept
 * open for a day at ten values a second holds one window of buckets, not
 * 36,000 points an hour, and a bucket is narrower than a pixel of the sparkline
 * anyway.
 *
 * @module
 */
import { lineScale } from "./scale.ts";

/** One bucket of a series: the mean of its numbers, the lowest and highest of them, and how many. */
export interface TrendPoint {
  /** Where the bucket starts, in epoch milliseconds. */
  time: number;
  value: number;
  low: number;
  high: number;
  readings: number;
}

/** A bucket as `datasource_history()` reads it with `avg` (its time ISO 8601 or epoch ms). */
export interface HistoryBucket {
  time: string | number;
  value: number;
  readings: number;
}

/** The buckets of one series, history and live values together. */
export interface Series {
  /**
   * Sets the history: `buckets` for the readings observed before `to`. Live
   * values added before it came and observed before `to` are dropped (the
   * history counts them); every value added afterwards counts.
   */
  setHistory(buckets: readonly HistoryBucket[], to: number): void;
  /**
   * A new history is on its way (read again after a reconnection): the live
   * values added from now on and observed before its end are dropped when it
   * comes, like those before the first.
   */
  expectHistory(): void;
  /** Adds a live number observed at `time` (epoch ms) to its bucket; anything but a finite number is ignored. */
  add(time: number, value: number): void;
  /** Drops the buckets that ended before `now - windowMs`; true when it dropped any. */
  trim(now: number): boolean;
  /** The buckets in time order. */
  points(): TrendPoint[];
}

/** The window a series keeps and the width of its buckets, in milliseconds. */
export interface SeriesOptions {
  windowMs: number;
  intervalMs: number;
}

/** An empty series, waiting for its history. */
export function createSeries(options: SeriesOptions): Series {
  const { windowMs, intervalMs } = options;
  let history = new Map<number, TrendPoint>();
  const live = new Map<number, TrendPoint>();
  // The live values added while the history is awaited: once it comes, those it counts are dropped.
  let pending: { time: number; value: number }[] | null = [];

  function addLive(time: number, value: number) {
    const start = bucketStart(time, intervalMs);
    const point = { time: start, value, low: value, high: value, readings: 1 };
    const stored = live.get(start);
    live.set(start, stored ? mergePoints(stored, point) : point);
  }

  return {
    setHistory(buckets, to) {
      history = new Map();
      for (const bucket of buckets) {
        const time = typeof bucket.time === "number" ? bucket.time : Date.parse(bucket.time);
        if (!Number.isFinite(time) || typeof bucket.value !== "number" || !Number.isFinite(bucket.value)) continue;
        const start = bucketStart(time, intervalMs);
        const readings = Math.max(1, Number(bucket.readings) || 1);
        const point = { time: start, value: bucket.value, low: bucket.value, high: bucket.value, readings };
        const stored = history.get(start);
        history.set(start, stored ? mergePoints(stored, point) : point);
      }
      const added = pending ?? [];
      pending = null;
      live.clear();
      for (const { time, value } of added) if (time >= to) addLive(time, value);
    },
    expectHistory() {
      pending = [];
    },
    add(time, value) {
      if (!Number.isFinite(time) || typeof value !== "number" || !Number.isFinite(value)) return;
      pending?.push({ time, value });
      addLive(time, value);
    },
    trim(now) {
      const oldest = now - windowMs;
      const first = bucketStart(oldest, intervalMs);
      let dropped = false;
      for (const map of [history, live]) {
        for (const time of map.keys()) if (time < first) dropped = map.delete(time) || dropped;
      }
      if (pending) pending = pending.filter((p) => p.time >= oldest);
      return dropped;
    },
    points() {
      const merged = new Map(history);
      for (const [time, point] of live) {
        const stored = merged.get(time);
        merged.set(time, stored ? mergePoints(stored, point) : point);
      }
      return [...merged.values()].sort((a, b) => a.time - b.time);
    },
  };
}

/** Where the bucket of `time` starts: buckets of `intervalMs` aligned to the epoch, as `date_bin()` makes them. */
export function bucketStart(time: number, intervalMs: number): number {
  return Math.floor(time / intervalMs) * intervalMs;
}

/**
 * Two buckets' numbers as one: the mean weighted by their counts, computed so
 * that it never overflows (each term is at most the larger mean), and kept
 * within the lowest and highest (rounding cannot push it out).
 */
export function mergePoints(a: TrendPoint, b: TrendPoint): TrendPoint {
  const readings = a.readings + b.readings;
  const low = Math.min(a.low, b.low);
  const high = Math.max(a.high, b.high);
  const mean = a.value * (a.readings / readings) + b.value * (b.readings / readings);
  return { time: a.time, value: Math.min(high, Math.max(low, mean)), low, high, readings };
}

/** The lowest and highest of `points` (their buckets' lows and highs) and of the finite `extra` numbers; null when none. */
export function trendRange(
  points: readonly TrendPoint[],
  extra: readonly unknown[] = [],
): { low: number; high: number } | null {
  let low = Infinity;
  let high = -Infinity;
  for (const point of points) {
    low = Math.min(low, point.low);
    high = Math.max(high, point.high);
  }
  for (const value of extra) {
    if (typeof value !== "number" || !Number.isFinite(value)) continue;
    low = Math.min(low, value);
    high = Math.max(high, value);
  }
  return low <= high ? { low, high } : null;
}

/** Where a sparkline is drawn: the time span `from`..`to` (epoch ms) across a `width` x `height` box, `pad` inside its edges. */
export interface SparkBox {
  from: number;
  to: number;
  width: number;
  height: number;
  pad?: number;
}

/**
 * The sparkline of `points` in `box` (y grows downwards), as an SVG path: a
 * line through each bucket's mean at its time, between the lowest and highest
 * mean; a single point is a dot (`M x y h 0`, drawn with a round cap); ""
 * when there are no points. Coordinates have one decimal.
 */
export function sparklinePath(points: readonly TrendPoint[], box: SparkBox): string {
  if (points.length === 0) return "";
  const pad = box.pad ?? 2;
  const share = lineScale(points.map((p) => p.value));
  const span = box.to - box.from;
  const x = (time: number) =>
    pad + (span > 0 ? Math.min(1, Math.max(0, (time - box.from) / span)) : 1) * (box.width - 2 * pad);
  const y = (value: number) => pad + (1 - share(value)) * (box.height - 2 * pad);
  const at = (p: TrendPoint) => `${x(p.time).toFixed(1)} ${y(p.value).toFixed(1)}`;
  if (points.length === 1) return `M${at(points[0]!)}h0`;
  return points.map((p, i) => `${i === 0 ? "M" : "L"}${at(p)}`).join("");
}
