/**
 * Payload validation: a zod schema built from the datasource's widgets, and
 * the translation of zod's issues into the API's `issues`.
 *
 * @module
 */
import { z } from "zod";
import { HttpError, MAX_ISSUES, type PayloadIssue, payloadIssuesError } from "./http_error.ts";
import type { PayloadLimits } from "./config.ts";
import { type DataKeyShape, dataKeyShapes, type FieldKind } from "./data_key_shape.ts";
import { compilePayloadCheck } from "./payload_check.ts";
import type { Widget } from "./store.ts";

/** A compiled validator for one datasource configuration. */
export interface PayloadValidator {
  /** The zod schema of a whole payload (also the source of the JSON Schema). */
  schema: z.ZodType;
  /** The DataKeys of the datasource, sorted. */
  dataKeys: string[];
  /** Returns the payload when valid; throws a 400 HttpError listing its issues (up to 100) otherwise. */
  validate(payload: unknown): Record<string, unknown>;
}

/** Generous limits, for callers that do not configure their own. */
export const DEFAULT_LIMITS: PayloadLimits = {
  maxDataKeys: 100,
  maxArrayLength: 10_000,
  maxStringLength: 4_096,
  maxDepth: 16,
};

/** Builds the validator of a datasource from its widgets. */
export function buildPayloadValidator(
  widgets: readonly Widget[],
  limits: PayloadLimits = DEFAULT_LIMITS,
): PayloadValidator {
  const shapes = [...dataKeyShapes(widgets)];
  const dataKeys = shapes.map(([key]) => key).sort();
  // Only names like `constructor` or `toString` need null-prototype payloads (see detachPrototypes).
  const shadowsPrototype = widgets.some((w) =>
    [w.data_key, ...Object.values(w.settings)].some((name) => typeof name === "string" && name in Object.prototype)
  );
  // The schema the JSON Schema comes from, and its twin that checks arrays' items until the issues list is full.
  const schema = payloadSchema(shapes, dataKeys, (shape) => shapeSchema(shape, limits, documentedList(limits)));
  const budget = { left: MAX_ISSUES };
  const check = payloadSchema(shapes, dataKeys, (shape) => shapeSchema(shape, limits, boundedList(limits, budget)));

  // zod is the reference and words the issues; valid payloads take the hand-written check.
  const isValid = compilePayloadCheck(widgets, limits);

  return {
    schema,
    dataKeys,
    validate(payload) {
      if (isObject(payload)) {
        if (Object.keys(payload).length > limits.maxDataKeys) {
          throw limitExceeded("", `at most ${limits.maxDataKeys} DataKeys per request`);
        }
        if (shadowsPrototype) detachPrototypes(payload);
      }
      if (isValid(payload)) return payload as Record<string, unknown>;
      budget.left = MAX_ISSUES;
      const result = check.safeParse(payload);
      if (result.success) return payload as Record<string, unknown>;
      throw payloadIssuesError("invalid_payload", toPayloadIssues(result.error.issues, dataKeys));
    },
  };
}

/** The schema of a whole payload: an object of the DataKeys, at least one of them. */
function payloadSchema(
  shapes: [string, DataKeyShape][],
  dataKeys: string[],
  schemaOf: (shape: DataKeyShape) => z.ZodType,
): z.ZodType {
  // Several widgets on one DataKey: the value must satisfy all of them (see data_key_shape.ts).
  const byKey = new Map(shapes.map(([key, shape]) => [key, schemaOf(shape)]));
  const shape = Object.fromEntries(dataKeys.map((key) => [key, byKey.get(key)!.optional()]));
  return z.strictObject(shape, expecting("a JSON object")).refine(
    (payload) => Object.keys(payload).length > 0,
    {
      message: `must be an object with at least one DataKey (${dataKeys.join(", ") || "none: link a widget first"})`,
      // Only when nothing else is wrong: `{"temperatur": 99}` is one issue (not a DataKey), not two.
      when: (payload) => payload.issues.length === 0,
    },
  );
}

/** Makes the schema of a chart's array from the schema of its items and what the array is. */
type ListSchema = (item: z.ZodType, phrase: string) => z.ZodType;

/** A zod array of at most the limit's items: what the JSON Schema shows. */
function documentedList(limits: PayloadLimits): ListSchema {
  const maxItems = { error: `must be at most ${limits.maxArrayLength} items` };
  return (item, phrase) => z.array(item, expecting(phrase)).max(limits.maxArrayLength, maxItems);
}

/**
 * The same rules as {@linkcode documentedList}, checked by hand: items are read only while the issues list of
 * this validation (`budget`) has room, so a 10,000-item array of wrong values costs 100 item checks, not 10,000.
 */
function boundedList(limits: PayloadLimits, budget: { left: number }): ListSchema {
  return (item, phrase) =>
    z.any().superRefine((list, ctx) => {
      if (!Array.isArray(list)) {
        ctx.addIssue({ code: "custom", message: expecting(phrase).error({ input: list }) });
        return;
      }
      if (list.length > limits.maxArrayLength) {
        ctx.addIssue({ code: "custom", message: `must be at most ${limits.maxArrayLength} items` });
        budget.left--;
      }
      for (let i = 0; i < list.length && budget.left > 0; i++) {
        const result = item.safeParse(list[i]);
        if (result.success) continue;
        for (const issue of result.error.issues) {
          ctx.addIssue({ code: "custom", path: [i, ...issue.path], message: issue.message });
          budget.left--;
        }
      }
    });
}

/** The schema of one DataKey's value. */
function shapeSchema(shape: DataKeyShape, limits: PayloadLimits, list: ListSchema): z.ZodType {
  const scalar = () => withMaxLength(z.union([z.number(), z.string()], expecting("a number or a string")), limits);
  if (shape.kind === "scalar") return scalar();
  if (shape.kind === "conflict") return z.any().refine(() => false, { error: `cannot be sent: ${shape.reason}` });
  const fieldSchema = (kind: FieldKind) =>
    kind === "scalar" ? scalar() : kind === "labels"
      ? list(
        withMaxLength(z.union([z.string(), z.number()], expecting("a string or a number")), limits),
        "an array of labels",
      )
      : list(z.number(expecting("a finite number")), "an array of numbers");
  const fields = Object.fromEntries([...shape.fields].map(([name, kind]) => [name, fieldSchema(kind)]));
  return z.strictObject(fields, expecting(shape.phrase)).superRefine((value, ctx) => {
    for (const [labels, values] of shape.charts) {
      const labelList = value[labels], valueList = value[values];
      if (!Array.isArray(labelList) || !Array.isArray(valueList) || valueList.length === labelList.length) continue;
      ctx.addIssue({
        code: "custom",
        path: [values],
        message: `must have as many values as "${labels}" has labels (${labelList.length})`,
      });
    }
  });
}

/**
 * Refuses strings longer than the limit, and strings PostgreSQL cannot store
 * in jsonb: a NUL character or half of a surrogate pair. Numbers pass.
 */
function withMaxLength(schema: z.ZodType, limits: PayloadLimits): z.ZodType {
  return schema
    .refine((value) => typeof value !== "string" || value.length <= limits.maxStringLength, {
      error: `must be at most ${limits.maxStringLength} characters`,
    })
    .refine((value) => typeof value !== "string" || (value.isWellFormed() && !value.includes("\0")), {
      error: "must be text without NUL characters or unpaired surrogates",
    });
}

/**
 * Gives the payload and its nested objects a null prototype, so that a
 * DataKey or sub-key named like an Object.prototype member (`constructor`,
 * `toString`) reads as absent when absent, not as the inherited function.
 */
function detachPrototypes(payload: Record<string, unknown>): void {
  Object.setPrototypeOf(payload, null);
  for (const key in payload) {
    const value = payload[key];
    if (isObject(value)) Object.setPrototypeOf(value, null);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function limitExceeded(path: string, expected: string): HttpError {
  const message = `${path ? `"${path}"` : "the payload"} must have ${expected}`;
  return new HttpError(400, "limit_exceeded", `Cannot parse payload: ${message}`, {
    issues: [{ path, expected, message }],
  });
}

/** A zod error option saying what was expected, or that it is missing. */
function expecting(phrase: string): { error: (issue: { input?: unknown }) => string } {
  return { error: (issue) => (issue.input === undefined ? `is required: ${phrase}` : `must be ${phrase}`) };
}

function toPayloadIssues(zodIssues: readonly z.core.$ZodIssue[], dataKeys: string[]): PayloadIssue[] {
  const issues: PayloadIssue[] = [];
  const seen = new Set<string>();
  const add = (issue: PayloadIssue) => {
    if (issues.length >= MAX_ISSUES || seen.has(issue.message)) return;
    seen.add(issue.message);
    issues.push(issue);
  };
  for (const zodIssue of zodIssues) {
    if (issues.length >= MAX_ISSUES) break;
    if (zodIssue.code === "unrecognized_keys") {
      for (const key of zodIssue.keys.slice(0, MAX_ISSUES)) {
        const path = [...zodIssue.path, key].join(".");
        if (zodIssue.path.length === 0) {
          add({
            path,
            expected: `one of the DataKeys ${dataKeys.join(", ")}`,
            message: `"${path}" is not a DataKey of this datasource`,
          });
        } else {
          add({ path, expected: "no such key", message: `"${path}" is not expected here` });
        }
      }
      continue;
    }
    const path = zodIssue.path.join(".");
    const said = zodIssue.message;
    const expected = said.replace(/^(must be |is required: )/, "");
    add({ path, expected, message: path ? `"${path}" ${said}` : `the payload ${said}` });
  }
  return issues;
}
