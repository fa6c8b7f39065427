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
  const fields = [...shape.fields].map(([name, kind]): [string, Check] => [
    name,
    kind === "scalar" ? scalar : (value) =>
      Array.isArray(value) && value.length <= limits.maxArrayLength &&
      value.every(kind === "labels" ? scalar : number),
  ]);
  const { charts } = shape;
  return (value) => {
    if (!isObject(value)) return false;
    let count = 0;
    for (const key in value) {
      if (!shape.fields.has(key)) return false;
      count++;
    }
    if (count !== fields.length) return false;
    for (const [name, check] of fields) if (!check(value[name])) return false;
    for (const [labels, values] of charts) {
      if ((value[labels] as unknown[]).length !== (value[values] as unknown[]).length) return false;
    }
    return true;
  };
}

/** Within the length limit, and storable in jsonb: no NUL, no half of a surrogate pair. */
function storableString(value: string, limits: PayloadLimits): boolean {
  return value.length <= limits.maxStringLength && value.isWellFormed() && !value.includes("\0");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
