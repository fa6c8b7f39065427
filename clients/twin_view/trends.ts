/**
 * The sparklines of a datasource's numeric widgets: which series each widget
 * draws (a SingleData DataKey, both fields of a DoubleData), the history they
 * start from (the last hour, read in one call when the page opens, and again
 * after a reconnection: what was posted meanwhile) and the live values they
 * grow with.
 *
 * @module
 */
import { createSeries, type HistoryBucket, type Series } from "./sparkline.ts";
import type { ShownValue, TwinWidget } from "./types.ts";

/** How far back a sparkline reaches: one hour. */
export const TREND_WINDOW_MS = 3_600_000;
/** The width of a sparkline's buckets: 30 s, 120 to the hour. */
export const TREND_INTERVAL_MS = 30_000;
/** {@linkcode TREND_INTERVAL_MS} as `datasource_history()` takes it. */
export const TREND_INTERVAL = "30 seconds";
/** The most keys `datasource_history()` reads in one call. */
export const HISTORY_KEYS_PER_CALL = 20;

/** A history point as `datasourceHistory()` returns it. */
export interface TrendHistoryPoint extends HistoryBucket {
  dataKey: string;
}

/** The series of one datasource's widgets. */
export interface Trends {
  /** Every series any widget draws, each once, in the widgets' order. */
  readonly keys: readonly string[];
  /** What the history read covers: `from` (included) to `to` (excluded), epoch ms. */
  readonly history: { readonly from: number; readonly to: number };
  /** Starts another history read, of the hour before `now`: returns what it covers. */
  reread(now: number): { from: number; to: number };
  /** The series `key`, if a widget draws it. */
  series(key: string): Series | undefined;
  /**
   * Sets the history of `keys` (read together) from `points` (their other keys
   * are ignored), read up to `to`: ignored when another read started since.
   */
  setHistory(keys: readonly string[], points: readonly TrendHistoryPoint[], to: number): void;
  /**
   * Adds the numbers of the DataKeys in `changed` to their series. The first
   * read's values (`initial`) were stored before the page opened: only those
   * observed after the history's end count, the history holds the others.
   */
  addValues(values: Readonly<Record<string, ShownValue>>, changed: readonly string[], initial: boolean): void;
  /** Drops what slid out of the window at `now`; true when something did. */
  trim(now: number): boolean;
  /** True when some series has a point. */
  hasPoints(): boolean;
}

/** The series `widget` draws: its DataKey for SingleData, `data_key.sub_key` for each DoubleData field, none for charts. */
export function trendKeys(widget: TwinWidget): string[] {
  if (widget.widget_type === "SingleData") return [widget.data_key];
  if (widget.widget_type !== "DoubleData") return [];
  const { primarySubKey, secondarySubKey } = widget.settings;
  return [primarySubKey, secondarySubKey].filter((k): k is string => !!k).map((k) => `${widget.data_key}.${k}`);
}

/** The numbers `value` gives `widget`'s series, as [series key, number] pairs: strings and other shapes give none. */
export function trendNumbers(widget: TwinWidget, value: unknown): [string, number][] {
  if (widget.widget_type === "SingleData") return isNumber(value) ? [[widget.data_key, value]] : [];
  if (widget.widget_type !== "DoubleData" || typeof value !== "object" || value === null) return [];
  const record = value as Record<string, unknown>;
  return trendKeys(widget).flatMap((key) => {
    const field = record[key.slice(widget.data_key.length + 1)];
    return isNumber(field) ? [[key, field] as [string, number]] : [];
  });
}

/** Splits `keys` into the calls `datasource_history()` takes (at most 20 keys each). */
export function historyCalls(keys: readonly string[]): string[][] {
  const calls: string[][] = [];
  for (let i = 0; i < keys.length; i += HISTORY_KEYS_PER_CALL) calls.push(keys.slice(i, i + HISTORY_KEYS_PER_CALL));
  return calls;
}

/** Reads the history of `keys` from `from` to `to` (epoch ms): `datasourceHistory()` with avg over 30 s. */
export type HistoryReader = (keys: string[], from: number, to: number) => Promise<TrendHistoryPoint[]>;

/**
 * Reads the hour `range` of every series into `trends`: one call per 20
 * series, and when a call is refused, one per series of it (so that a series
 * the database refuses costs only its own history). Returns each series left
 * without history, with the reason; those show their live values only.
 */
export async function loadTrendHistory(
  trends: Trends,
  read: HistoryReader,
  range: { from: number; to: number },
): Promise<string[]> {
  const failed: string[] = [];
  async function readKeys(keys: string[]): Promise<void> {
    try {
      trends.setHistory(keys, await read(keys, range.from, range.to), range.to);
    } catch (error) {
      if (keys.length > 1) return void await Promise.all(keys.map((key) => readKeys([key])));
      trends.setHistory(keys, [], range.to);
      failed.push(`${keys[0]} (${error instanceof Error ? error.message : error})`);
    }
  }
  await Promise.all(historyCalls(trends.keys).map(readKeys));
  return failed;
}

/** The series of `widgets`, empty, for a page opened at `now` (the history read ends there). */
export function createTrends(widgets: readonly TwinWidget[], now: number): Trends {
  const series = new Map<string, Series>();
  for (const key of widgets.flatMap(trendKeys)) {
    if (!series.has(key)) series.set(key, createSeries({ windowMs: TREND_WINDOW_MS, intervalMs: TREND_INTERVAL_MS }));
  }
  let history = { from: now - TREND_WINDOW_MS, to: now };
  return {
    keys: [...series.keys()],
    get history() {
      return history;
    },
    reread(now) {
      history = { from: now - TREND_WINDOW_MS, to: now };
      for (const s of series.values()) s.expectHistory();
      return history;
    },
    series: (key) => series.get(key),
    setHistory(keys, points, to) {
      if (to !== history.to) return;
      for (const key of keys) series.get(key)?.setHistory(points.filter((p) => p.dataKey === key), to);
    },
    addValues(values, changed, initial) {
      // Each series once, though several widgets draw it.
      const numbers = new Map<string, [number, number]>();
      for (const widget of widgets) {
        const latest = values[widget.data_key];
        if (!latest || !changed.includes(widget.data_key)) continue;
        const time = Date.parse(latest.observed_at);
        if (initial && !(time >= history.to)) continue;
        for (const [key, number] of trendNumbers(widget, latest.value)) numbers.set(key, [time, number]);
      }
      for (const [key, [time, number]] of numbers) series.get(key)?.add(time, number);
    },
    trim(now) {
      let dropped = false;
      for (const s of series.values()) dropped = s.trim(now) || dropped;
      return dropped;
    },
    hasPoints: () => [...series.values()].some((s) => s.points().length > 0),
  };
}

function isNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}
