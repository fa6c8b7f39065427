/**
 * Plain-text readings of widget values, shared by the text panel and the
 * scene's labels. Exact: numbers are shown as JSON has them, never rounded;
 * only numbers the page computes (a sparkline's range) are shortened.
 *
 * @module
 */
import type { TwinWidget } from "./types.ts";

/** One scalar of a DoubleData value or one point of a chart. */
export interface Reading {
  label: string;
  value: number | string;
}

/** What a value reads as, for the widget showing it: "42.5", "rpm 1500 · vibration 0.75", "A 112 · B 124". */
export function formatValue(widget: TwinWidget, value: unknown): string {
  if (value === undefined) return "no value yet";
  const readings = widget.widget_type === "SingleData" ? null : readingsOf(widget, value);
  if (readings) return readings.length === 0 ? "(empty)" : readings.map((r) => `${r.label} ${r.value}`).join(" · ");
  return isScalar(value) ? String(value) : JSON.stringify(value);
}

/**
 * The labelled scalars in a DoubleData or chart value (sub-keys in the
 * widget's order, or labels with their values); null when the value does not
 * have the widget's shape (the endpoint never stores such a value).
 */
export function readingsOf(widget: TwinWidget, value: unknown): Reading[] | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  const { primarySubKey, secondarySubKey, labelsKey, valuesKey } = widget.settings;
  if (widget.widget_type === "DoubleData" && primarySubKey && secondarySubKey) {
    const pair = [primarySubKey, secondarySubKey].map((key) => ({ label: key, value: record[key] }));
    return pair.every((r) => isScalar(r.value)) ? pair as Reading[] : null;
  }
  if ((widget.widget_type === "BarChart" || widget.widget_type === "LineChart") && labelsKey && valuesKey) {
    const labels = record[labelsKey];
    const values = record[valuesKey];
    if (!Array.isArray(labels) || !Array.isArray(values) || labels.length !== values.length) return null;
    if (!values.every((v) => typeof v === "number")) return null;
    return labels.map((label, i) => ({ label: String(label), value: values[i] as number }));
  }
  return null;
}

/** An observation time as the panel shows it: `11:32:05.123 UTC` (the date too when not today, UTC). */
export function formatTime(iso: string, now: Date = new Date()): string {
  const time = new Date(iso);
  if (Number.isNaN(time.getTime())) return iso;
  const [date, clock] = time.toISOString().replace("Z", "").split("T") as [string, string];
  return date === now.toISOString().slice(0, 10) ? `${clock} UTC` : `${date} ${clock} UTC`;
}

/**
 * A chart's labels as its columns show them: when every label starts with the
 * same words and has more after them ("Machine A", "Machine B"), the first
 * keeps them and the others drop them ("Machine A", "B"), the way an axis
 * writes a date once. Otherwise the labels as they are.
 */
export function shortLabels(labels: readonly string[]): string[] {
  const words = labels.map((label) => label.split(/(?<=\s)/));
  let shared = 0;
  const first = words[0] ?? [];
  while (
    shared < first.length - 1 && words.every((w) => w.length > shared + 1 && w[shared] === first[shared])
  ) shared++;
  if (labels.length < 2 || shared === 0) return [...labels];
  return words.map((w, i) => i === 0 ? labels[0]! : w.slice(shared).join("").trim() || labels[i]!);
}

/** A computed number (an average, a range's end) to six significant digits: `41.9837`, `1500`, `1.79769e+308`. */
export function formatApprox(value: number): string {
  return String(Number(value.toPrecision(6)));
}

function isScalar(value: unknown): value is number | string {
  return typeof value === "number" || typeof value === "string";
}
