/**
 * The datasource's Example Schema: an example payload and a JSON Schema,
 * both generated from its widgets, as the datasource card shows them.
 *
 * @module
 */
import { z } from "zod";
import type { PayloadValidator } from "./payload_schema.ts";
import type { ResolvedKey, Widget } from "./store.ts";

/** The body of `GET /functions/v1/ingest-data`. */
export interface ExampleSchema {
  datasource: { id: string; name: string; enabled: boolean; data_keys: string[] };
  example: Record<string, unknown>;
  json_schema: Record<string, unknown>;
}

/** Builds the Example Schema of a resolved key's datasource. */
export function buildExampleSchema(key: ResolvedKey, validator: PayloadValidator): ExampleSchema {
  const example: Record<string, unknown> = {};
  for (const widget of key.widgets) {
    if (!(widget.data_key in example)) example[widget.data_key] = exampleValue(widget);
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

/** The documentation's example value for a widget. */
function exampleValue(widget: Widget): unknown {
  const settings = widget.settings as Record<string, string>;
  switch (widget.widget_type) {
    case "SingleData":
      return 42.5;
    case "DoubleData":
      return { [settings.primarySubKey!]: 1500, [settings.secondarySubKey!]: 0.75 };
    case "BarChart":
    case "LineChart":
      return { [settings.labelsKey!]: ["Machine A", "Machine B", "Machine C"], [settings.valuesKey!]: [112, 124, 98] };
  }
}
