/**
 * What value each DataKey takes, merged from every widget linked to it: the
 * one model the zod schema, the hand-written check and the Example Schema are
 * built from, so that the example always satisfies the checks.
 *
 * Several widgets may share a DataKey; the value must satisfy all of them.
 * Chart and DoubleData widgets each read their own sub-keys from the value,
 * so a shared value holds the union of their sub-keys (and nothing else).
 * A SingleData next to an object widget, or a sub-key one widget reads as a
 * scalar and another as an array, cannot be satisfied: the database refuses
 * such widgets (private.refuse_conflicting_widget in
 * supabase/migrations/20261206000200_datasources_and_widgets.sql), and the
 * shape says why.
 *
 * @module
 */
import type { Widget } from "./store.ts";

/** What a sub-key of an object value holds. */
export type FieldKind = "scalar" | "labels" | "numbers";

/** The value one DataKey accepts. */
export type DataKeyShape =
  | { kind: "scalar" }
  | {
    kind: "object";
    /** Sub-key -> what it holds, in the order the widgets name them. */
    fields: Map<string, FieldKind>;
    /** [labelsKey, valuesKey] of each chart: the two arrays have the same length. */
    charts: [string, string][];
    /** What the object must hold, e.g. `an object with "rpm" and "vibration"`. */
    phrase: string;
  }
  | { kind: "conflict"; reason: string };

/** The shape of every DataKey of a datasource, in the order of its widgets. */
export function dataKeyShapes(widgets: readonly Widget[]): Map<string, DataKeyShape> {
  const byKey = new Map<string, Widget[]>();
  for (const widget of widgets) {
    const list = byKey.get(widget.data_key) ?? [];
    list.push(widget);
    byKey.set(widget.data_key, list);
  }
  return new Map([...byKey].map(([dataKey, list]) => [dataKey, mergeShape(list)]));
}

function mergeShape(widgets: Widget[]): DataKeyShape {
  const singles = widgets.filter((w) => w.widget_type === "SingleData").length;
  if (singles === widgets.length) return { kind: "scalar" };
  if (singles > 0) {
    return { kind: "conflict", reason: "a SingleData widget takes a number or a string, another widget an object" };
  }
  const fields = new Map<string, FieldKind>();
  const charts: [string, string][] = [];
  const put = (name: string, kind: FieldKind): string | undefined => {
    const had = fields.get(name);
    if (had === undefined || had === kind) fields.set(name, kind);
    else if (had === "scalar" || kind === "scalar") {
      return `"${name}" is read as a scalar by one widget, an array by another`;
    } else fields.set(name, "numbers"); // labels and numbers: an array of numbers is both
  };
  for (const widget of widgets) {
    const s = widget.settings as Record<string, string>;
    const conflict = widget.widget_type === "DoubleData"
      ? put(s.primarySubKey!, "scalar") ?? put(s.secondarySubKey!, "scalar")
      : put(s.labelsKey!, "labels") ?? put(s.valuesKey!, "numbers");
    if (conflict) return { kind: "conflict", reason: conflict };
    if (widget.widget_type !== "DoubleData") charts.push([s.labelsKey!, s.valuesKey!]);
  }
  const names = [...fields.keys()].map((name) => `"${name}"`);
  const list = names.length === 2 ? names.join(" and ") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
  const arrays = [...fields.values()].every((kind) => kind !== "scalar") ? " arrays" : "";
  return { kind: "object", fields, charts, phrase: `an object with ${list}${arrays}` };
}
