/**
 * "The newest observation wins": how `watchDatasource` merges the
 * values it reads and the broadcasts it receives into the latest value of each
 * DataKey, and how it recognises a broadcast it already applied. Pure: no I/O,
 * no timers, nothing of supabase-js.
 *
 * @module
 */
import type { LatestValue, WidgetValue } from "./watch_datasource.ts";

/** The latest value of each DataKey that has one, by DataKey (an object without prototype). */
export type Current = Record<string, LatestValue>;

/** A row of `datasource_latest_values`. */
export interface LatestRow {
  data_key: string;
  value: WidgetValue;
  observed_at: string;
  received_at: string;
}

/** The broadcast payload the write functions send (`realtime.send` adds `id`). */
export interface ValuesMessage {
  id?: string;
  datasource_id: string;
  observed_at?: string;
  /** Batches and readings: each DataKey's own observation time (`observed_at` is the newest of them). */
  observed_at_by_key?: Record<string, string>;
  received_at: string;
  values: Record<string, WidgetValue>;
  /** The values were larger than a broadcast may carry: read them (`observed_at_by_key` names the DataKeys). */
  values_omitted?: boolean;
}

/** How many applied message ids a watch remembers. */
export const REMEMBERED_IDS = 1000;

/** An empty {@linkcode Current}. */
export function emptyCurrent(): Current {
  return Object.create(null);
}

/** Stores `candidate` unless the stored value was observed later (ties: the later arrival wins). */
export function offer(current: Current, dataKey: string, candidate: LatestValue): boolean {
  const stored = current[dataKey];
  const order = stored ? compare(candidate, stored) : 1;
  if (order < 0 || (order === 0 && JSON.stringify(stored!.value) === JSON.stringify(candidate.value))) return false;
  current[dataKey] = candidate;
  return true;
}

/** Offers the value of each row read; returns the DataKeys whose value changed. */
export function offerRows(current: Current, rows: readonly LatestRow[]): string[] {
  return rows
    .filter((row) =>
      offer(current, row.data_key, {
        value: row.value,
        observed_at: utc(row.observed_at),
        received_at: utc(row.received_at),
      })
    )
    .map((row) => row.data_key);
}

/** Offers the values a broadcast carries (none when it has no `values` object); returns the changed DataKeys. */
export function offerMessage(current: Current, payload: ValuesMessage): string[] {
  if (typeof payload.values !== "object" || payload.values === null) return [];
  const received_at = utc(payload.received_at);
  // Each DataKey's observation time when the message has them, else the message's; a message without
  // either (sent by an older migration) carries values observed when received.
  const observedAt = (dataKey: string) =>
    utc(payload.observed_at_by_key?.[dataKey] ?? payload.observed_at ?? payload.received_at);
  return Object.entries(payload.values)
    .filter(([dataKey, value]) => offer(current, dataKey, { value, observed_at: observedAt(dataKey), received_at }))
    .map(([dataKey]) => dataKey);
}

/**
 * Records the message id `id` as applied: false when it already was. Remembers the `limit` latest ids, forgetting
 * the oldest.
 */
export function firstSeen(applied: Set<string>, id: string, limit: number = REMEMBERED_IDS): boolean {
  if (applied.has(id)) return false;
  applied.add(id);
  if (applied.size > limit) applied.delete(applied.values().next().value!);
  return true;
}

/** Orders two observations of one DataKey: by observed_at, then received_at. */
export function compare(a: LatestValue, b: LatestValue): number {
  return Date.parse(a.observed_at) - Date.parse(b.observed_at) ||
    Date.parse(a.received_at) - Date.parse(b.received_at);
}

/** An ISO 8601 time in UTC with `Z` and milliseconds. */
export function utc(time: string): string {
  return new Date(time).toISOString();
}
