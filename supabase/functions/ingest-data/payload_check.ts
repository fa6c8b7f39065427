/**
 * The hot path's payload check: the rules of the zod schema in
 * payload_schema.ts, written out by hand. It allocates nothing and costs a
 * fraction of `safeParse`. `true` means valid; `false` means "ask zod", which
 * finds every issue and words it. Tests check that the two agree.
 *
 * @module
 */
import type { PayloadLimits } from "./config.ts";
import type { Widget } from "./store.ts";

type Check = (value: unknown) => boolean;

/** Compiles the check of a whole payload from a datasource's widgets. */
export function compilePayloadCheck(widgets: readonly Widget[], limits: PayloadLimits): Check {
  const checksByKey = new Map<string, Check[]>();
  for (const widget of widgets) {
    const checks = checksByKey.get(widget.data_key) ?? [];
    checks.push(widgetCheck(widget, limits));
    checksByKey.set(widget.data_key, checks);
  }
  return (payload) => {
    if (!isObject(payload)) return false;
    let count = 0;
    for (const key in payload) {
      const checks = checksByKey.get(key);
      if (!checks) return false;
      for (const check of checks) if (!check(payload[key])) return false;
      count++;
    }
    return count > 0;
  };
}

function widgetCheck(widget: Widget, limits: PayloadLimits): Check {
  const settings = widget.settings as Record<string, string>;
  const scalar = (value: unknown) =>
    typeof value === "number" ? Number.isFinite(value) : typeof value === "string" && storableString(value, limits);
  switch (widget.widget_type) {
    case "SingleData":
      return scalar;
    case "DoubleData": {
      const { primarySubKey: first, secondarySubKey: second } = settings;
      return (value) =>
        isObject(value) && hasExactly(value, first!, second!) && scalar(value[first!]) && scalar(value[second!]);
    }
    case "BarChart":
    case "LineChart": {
      const { labelsKey: labels, valuesKey: values } = settings;
      return (value) => {
        if (!isObject(value) || !hasExactly(value, labels!, values!)) return false;
        const labelList = value[labels!], valueList = value[values!];
        return Array.isArray(labelList) && Array.isArray(valueList) && labelList.length === valueList.length &&
          labelList.length <= limits.maxArrayLength && labelList.every(scalar) &&
          valueList.every((n) => typeof n === "number" && Number.isFinite(n));
      };
    }
  }
}

/** Within the length limit, and storable in jsonb: no NUL, no half of a surrogate pair. */
function storableString(value: string, limits: PayloadLimits): boolean {
  return value.length <= limits.maxStringLength && value.isWellFormed() && !value.includes("\0");
}

/** True when the object's enumerable keys are exactly `a` and `b`. */
function hasExactly(value: Record<string, unknown>, a: string, b: string): boolean {
  let count = 0;
  for (const key in value) {
    if (key !== a && key !== b) return false;
    count++;
  }
  return count === 2;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
