/**
 * What a twin dashboard imports to read a datasource's history for trends,
 * bucketed in the database by `datasource_history()` (row level security
 * decides what the signed-in user sees; others get no points):
 *
 * ```ts
 * const points = await datasourceHistory(supabase, datasourceId, {
 *   keys: ["motor_stats.rpm"],
 *   from: new Date(Date.now() - 3600_000),
 *   to: new Date(),
 *   interval: "1 minute",
 *   agg: "avg",
 * });
 * // points: [{ dataKey: "motor_stats.rpm", time: "2026-12-05T09:00:00.000Z", value: 1503.5, readings: 60 }, …]
 * ```
 *
 * @module
 */
import type { SupabaseClient } from "@supabase/supabase-js";
import type { WidgetValue } from "./watch_datasource.ts";

/** The aggregates over a bucket's numeric readings (a SingleData number or a DoubleData field such as `motor_stats.rpm`). */
export type NumericAgg = "avg" | "min" | "max" | "sum" | "count";
/** A bucket's first or last reading whatever its type (a chart's labels and values too), or the readings themselves. */
export type ReadingAgg = "first" | "last" | "none";
/** Every aggregate `datasource_history()` computes. */
export type HistoryAgg = NumericAgg | ReadingAgg;

/** What to read: `keys` as DataKeys or `data_key.sub_key`, from `from` (included) to `to` (excluded). */
export interface HistoryQuery<A extends HistoryAgg = HistoryAgg> {
  keys: string[];
  from: Date | string;
  to: Date | string;
  /** A PostgreSQL interval in days, hours, minutes or seconds (`"1 minute"`); not used with `none`. */
  interval?: string;
  /** Default `avg`. */
  agg?: A;
  /** With `none`: at most this many readings (default 1,000, at most 10,000); with buckets, per DataKey. */
  limit?: number;
  /** With `none`: the last point's `cursor`, to read the next ones. */
  cursor?: string;
}

/** One bucket (or, with `none`, one reading) of one DataKey; times are UTC ISO 8601 with milliseconds. */
export interface HistoryPoint<V> {
  dataKey: string;
  /** Where the bucket starts (aligned to 1970-01-01T00:00:00Z), or the reading's observation time. */
  time: string;
  value: V;
  /** The readings in the bucket (numeric ones for numeric aggregates); 1 with `none`. */
  readings: number;
  /** With `none`: pass it as `cursor` to read on from this reading; otherwise null. */
  cursor: string | null;
}

/** A numeric aggregate is a number; `first`, `last` and `none` give the stored value, of type `V`. */
export type HistoryValue<A extends HistoryAgg, V extends WidgetValue = WidgetValue> = A extends NumericAgg ? number : V;

/** A refused read: the database's message names the argument at fault; `code` is its SQLSTATE (22023 for arguments). */
export class HistoryError extends Error {
  /** The PostgreSQL or PostgREST error code. */
  readonly code: string | undefined;
  constructor(message: string, code?: string) {
    super(message);
    this.name = "HistoryError";
    this.code = code;
  }
}

/** A row as `datasource_history()` returns it. */
interface HistoryRow {
  data_key: string;
  time: string;
  value: unknown;
  readings: number | string;
  cursor: string | null;
}

/** Reads `datasourceId`'s history as `query` says; throws {@linkcode HistoryError} when the database refuses. */
export async function datasourceHistory<A extends HistoryAgg = "avg", V extends WidgetValue = WidgetValue>(
  supabase: SupabaseClient,
  datasourceId: string,
  query: HistoryQuery<A>,
): Promise<HistoryPoint<HistoryValue<A, V>>[]> {
  const { data, error } = await supabase.rpc("datasource_history", {
    p_datasource_id: datasourceId,
    p_keys: query.keys,
    p_from: isoTime(query.from),
    p_to: isoTime(query.to),
    p_interval: query.interval ?? null,
    p_agg: query.agg ?? "avg",
    p_limit: query.limit ?? 1000,
    p_cursor: query.cursor ?? null,
  });
  if (error) throw new HistoryError(error.message, error.code);
  return ((data ?? []) as HistoryRow[]).map((row) => ({
    dataKey: row.data_key,
    time: row.time,
    value: row.value as HistoryValue<A, V>,
    readings: Number(row.readings),
    cursor: row.cursor,
  }));
}

/** Groups points by DataKey, each series in time order as read. */
export function seriesByKey<V>(points: HistoryPoint<V>[]): Map<string, HistoryPoint<V>[]> {
  const series = new Map<string, HistoryPoint<V>[]>();
  for (const point of points) {
    const list = series.get(point.dataKey);
    if (list) list.push(point);
    else series.set(point.dataKey, [point]);
  }
  return series;
}

function isoTime(time: Date | string): string {
  return typeof time === "string" ? time : time.toISOString();
}
