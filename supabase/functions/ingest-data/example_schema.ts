/**
 * The datasource's Example Schema: an example payload and a JSON Schema,
 * both generated from its widgets, as the datasource card shows them.
 *
 * @module
 */
import { z } from "zod";
import type { exampleSchemaSchema } from "./api_schema.ts";
import type { PayloadValidator } from "./payload_schema.ts";
import type { ResolvedKey } from "./store.ts";
import { type DataKeyShape, dataKeyShapes } from "./data_key_shape.ts";

/** The body of `GET /functions/v1/ingest-data` (see api_schema.ts). */
export type ExampleSchema = z.infer<typeof exampleSchemaSchema>;

/** Builds the Example Schema of a resolved key's datasource; POST accepts its example. */
export function buildExampleSchema(key: ResolvedKey, validator: PayloadValidator): ExampleSchema {
  const example: Record<string, unknown> = {};
  for (const [dataKey, shape] of dataKeyShapes(key.widgets)) {
    // A DataKey whose widgets disagree accepts nothing (the database refuses such widgets now).
    if (shape.kind !== "conflict") example[dataKey] = exampleValue(shape);
  }
  const jsonSchema = z.toJSONSchema(validator.schema) as Record<string, unknown>;
  jsonSchema.minProperties = 1;
  return {
    datasource: {
      id: key.datasource_id,
      name: key.datasource_name,
      enabled: key.enabled,
      data_keys: validator.dataKeys,
    },
    example,
    json_schema: jsonSchema,
  };
}

/** Scalars for the sub-keys of an object, in turn: the documentation's DoubleData values first. */
const SCALARS = [1500, 0.75, 42.5, 7, 0.5, 230];

/** The documentation's example value for a DataKey, whichever widgets share it. */
function exampleValue(shape: Exclude<DataKeyShape, { kind: "conflict" }>): unknown {
  if (shape.kind === "scalar") return 42.5;
  let scalars = 0;
  const value: Record<string, unknown> = {};
  for (const [name, kind] of shape.fields) {
    value[name] = kind === "scalar"
      ? SCALARS[scalars++ % SCALARS.length]
      : kind === "labels"
      ? ["Machine A", "Machine B", "Machine C"]
      : [112, 124, 98];
  }
  return value;
}
