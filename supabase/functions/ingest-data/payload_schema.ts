/**
 * Payload validation: a zod schema built from the datasource's widgets, and
 * the translation of zod's issues into the API's `issues`.
 *
 * @module
 */
import { z } from "zod";
import { HttpError, type PayloadIssue } from "./http_error.ts";
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
  /** Returns the payload when valid; throws a 400 HttpError listing every issue otherwise. */
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
  // Several widgets on one DataKey: the value must satisfy all of them (see data_key_shape.ts).
  const byKey = new Map([...dataKeyShapes(widgets)].map(([key, shape]) => [key, shapeSchema(shape, limits)]));
  const dataKeys = [...byKey.keys()].sort();
  // Only names like `constructor` or `toString` need null-prototype payloads (see detachPrototypes).
  const shadowsPrototype = widgets.some((w) =>
    [w.data_key, ...Object.values(w.settings)].some((name) => typeof name === "string" && name in Object.prototype)
  );
  const shape = Object.fromEntries(dataKeys.map((key) => [key, byKey.get(key)!.optional()]));
  const schema = z.strictObject(shape, expecting("a JSON object")).refine(
    (payload) => Object.keys(payload).length > 0,
    {
      message: `must be an object with at least one DataKey (${dataKeys.join(", ") || "none: link a widget first"})`,
      // Only when nothing else is wrong: `{"temperatur": 99}` is one issue (not a DataKey), not two.
      when: (payload) => payload.issues.length === 0,
    },
  );

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
      const result = schema.safeParse(payload);
      if (result.success) return payload as Record<string, unknown>;
      const issues = toPayloadIssues(result.error.issues, dataKeys);
      const more = issues.length > 1 ? ` (and ${issues.length - 1} more issue${issues.length > 2 ? "s" : ""})` : "";
      throw new HttpError(400, "invalid_payload", `Cannot parse payload: ${issues[0]!.message}${more}`, { issues });
    },
  };
}

/** The schema of one DataKey's value. */
function shapeSchema(shape: DataKeyShape, limits: PayloadLimits): z.ZodType {
  const scalar = () => withMaxLength(z.union([z.number(), z.string()], expecting("a number or a string")), limits);
  if (shape.kind === "scalar") return scalar();
  if (shape.kind === "conflict") return z.any().refine(() => false, { error: `cannot be sent: ${shape.reason}` });
  const maxItems = { error: `must be at most ${limits.maxArrayLength} items` };
  const fieldSchema = (kind: FieldKind) =>
    kind === "scalar" ? scalar() : kind === "labels"
      ? z.array(
        withMaxLength(z.union([z.string(), z.number()], expecting("a string or a number")), limits),
        expecting("an array of labels"),
      ).max(limits.maxArrayLength, maxItems)
      : z.array(z.number(expecting("a finite number")), expecting("an array of numbers")).max(
        limits.maxArrayLength,
        maxItems,
      );
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
    if (seen.has(issue.message)) return;
    seen.add(issue.message);
    issues.push(issue);
  };
  for (const zodIssue of zodIssues) {
    if (zodIssue.code === "unrecognized_keys") {
      for (const key of zodIssue.keys) {
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
