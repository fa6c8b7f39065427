/**
 * The hot path's payload check: the rules of the zod schema in
 * payload_schema.ts, written out by hand. It allocates nothing and costs a
 * fraction of `safeParse`. `true` means valid; `false` means "ask zod", which
 * finds every issue and words it. Tests check that the two agree.
 *
 * @module
 */
import type { PayloadLimits } from "./config.ts";
import { type DataKeyShape, dataKeyShapes } from "./data_key_shape.ts";
import type { Widget } from "./store.ts";

type Check = (value: unknown) => boolean;

/** Compiles the check of a whole payload from a datasource's widgets. */
export function compilePayloadCheck(widgets: readonly Widget[], limits: PayloadLimits): Check {
  const checksByKey = new Map([...dataKeyShapes(widgets)].map(([key, shape]) => [key, shapeCheck(shape, limits)]));
  return (payload) => {
    if (!isObject(payload)) return false;
    let count = 0;
    for (const key in payload) {
      const check = checksByKey.get(key);
      if (!check || !check(payload[key])) return false;
      count++;
    }
    return count > 0;
  };
}

function shapeCheck(shape: DataKeyShape, limits: PayloadLimits): Check {
  const scalar = (value: unknown) =>
    typeof value === "number" ? Number.isFinite(value) : typeof value === "string" && storableString(value, limits);
  const number = (value: unknown) => typeof value === "number" && Number.isFinite(value);
  if (shape.kind === "scalar") return scalar;
  if (shape.kind === "conflict") return () => false;
  const names = [...shape.fields.keys()];
  // One widget on the DataKey (the usual case): the closures of old, about twice as fast as the general one.
  if (names.length === 2 && shape.charts.length === 0) {
    const [first, second] = names as [string, string];
    return (value) =>
      isObject(value) && hasExactly(value, first, second) && scalar(value[first]) && scalar(value[second]);
  }
  if (names.length === 2 && shape.charts.length === 1) {
    const [[labels, values]] = shape.charts as [[string, string]];
    return (value) => {
      if (!isObject(value) || !hasExactly(value, labels, values)) return false;
      const labelList = value[labels], valueList = value[values];
      return Array.isArray(labelList) && Array.isArray(valueList) && labelList.length === valueList.length &&
        labelList.length <= limits.maxArrayLength && labelList.every(scalar) && valueList.every(number);
    };
  }
  // Several widgets share the DataKey: parallel arrays and indexed loops.
  const checks = [...shape.fields.values()].map((kind): Check =>
    kind === "scalar" ? scalar : (value) =>
      Array.isArray(value) && value.length <= limits.maxArrayLength &&
      value.every(kind === "labels" ? scalar : number)
  );
  const chartLabels = shape.charts.map(([l]) => l), chartValues = shape.charts.map(([, v]) => v);
  return (value) => {
    if (!isObject(value)) return false;
    let count = 0;
    for (const key in value) {
      if (!names.includes(key)) return false;
      count++;
    }
    if (count !== names.length) return false;
    for (let i = 0; i < names.length; i++) if (!checks[i]!(value[names[i]!])) return false;
    for (let i = 0; i < chartLabels.length; i++) {
      if ((value[chartLabels[i]!] as unknown[]).length !== (value[chartValues[i]!] as unknown[]).length) return false;
    }
    return true;
  };
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
