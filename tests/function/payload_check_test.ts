/**
 * The hand-written payload check agrees with the zod schema it shortcuts:
 * on valid payloads, on values of the wrong shape and on arbitrary JSON,
 * with the default limits and with tiny ones.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { compilePayloadCheck } from "../../supabase/functions/ingest-data/payload_check.ts";
import { buildPayloadValidator, DEFAULT_LIMITS } from "../../supabase/functions/ingest-data/payload_schema.ts";
import { buildExampleSchema } from "../../supabase/functions/ingest-data/example_schema.ts";
import type { ResolvedKey, Widget } from "../../supabase/functions/ingest-data/store.ts";
import { caseArb, sharedWidgetsArb, valueArb, widgetsArb } from "../support/arbitraries.ts";

const TINY_LIMITS = { ...DEFAULT_LIMITS, maxArrayLength: 3, maxStringLength: 5 };

function agree(widgets: readonly Widget[], payload: unknown, limits = DEFAULT_LIMITS): void {
  const zodSays = buildPayloadValidator(widgets, limits).schema.safeParse(payload).success;
  assert.equal(compilePayloadCheck(widgets, limits)(payload), zodSays, JSON.stringify(payload));
}

/** For each DataKey: absent, a valid value, or any JSON value; sometimes a key that is not a DataKey. */
const mixedArb = widgetsArb.chain((widgets) =>
  fc.record({
    widgets: fc.constant(widgets),
    payload: fc.tuple(
      ...widgets.map((w) => fc.option(fc.oneof(valueArb(w), fc.jsonValue()), { nil: undefined })),
      fc.option(fc.jsonValue(), { nil: undefined }),
    ).map((values) => {
      const payload: Record<string, unknown> = {};
      widgets.forEach((w, i) => values[i] !== undefined && (payload[w.data_key] = values[i]));
      if (values[widgets.length] !== undefined) payload["not_a_data_key"] = values[widgets.length];
      return payload;
    }),
  })
);

Deno.test("payload check: every valid payload passes, as with zod", () => {
  fc.assert(
    fc.property(caseArb, ({ widgets, payload }) => {
      assert.equal(compilePayloadCheck(widgets as Widget[], DEFAULT_LIMITS)(payload), true);
      agree(widgets as Widget[], payload);
    }),
    { numRuns: 300 },
  );
});

Deno.test("payload check: agrees with zod on mixed valid and arbitrary values, with default and tiny limits", () => {
  fc.assert(
    fc.property(mixedArb, ({ widgets, payload }) => {
      agree(widgets as Widget[], payload);
      agree(widgets as Widget[], payload, TINY_LIMITS);
    }),
    { numRuns: 500 },
  );
});

Deno.test("payload check: agrees with zod on edge cases", () => {
  const widgets = [
    { id: "1", name: "t", widget_type: "SingleData", data_key: "temperature", settings: {} },
    {
      id: "2",
      name: "m",
      widget_type: "DoubleData",
      data_key: "motor_stats",
      settings: { primarySubKey: "rpm", secondarySubKey: "vibration" },
    },
    {
      id: "3",
      name: "p",
      widget_type: "BarChart",
      data_key: "production_output",
      settings: { labelsKey: "machines", valuesKey: "units_per_hour" },
    },
  ] as Widget[];
  const cases: unknown[] = [
    {},
    [],
    null,
    "text",
    { temperature: Infinity },
    { temperature: "a\0b" },
    { temperature: "\ud800" },
    { temperature: "x".repeat(4097) },
    { temperature: true },
    { motor_stats: { rpm: 1 } },
    { motor_stats: { rpm: 1, vibration: 2, extra: 3 } },
    { motor_stats: [1, 2] },
    { production_output: { machines: ["a"], units_per_hour: [] } },
    { production_output: { machines: ["a"], units_per_hour: ["1"] } },
    { production_output: { machines: [null], units_per_hour: [1] } },
    JSON.parse('{"__proto__": {"temperature": 1}}'),
    JSON.parse('{"temperature": 1, "__proto__": 2}'),
  ];
  for (const payload of cases) agree(widgets, payload);
});

Deno.test("payload check: agrees with zod on shared DataKeys (union of sub-keys, conflicts, mutations)", () => {
  const arb = sharedWidgetsArb.chain((specs) => {
    const widgets = specs.map((w, i) => ({ ...w, id: String(i) })) as Widget[];
    const validator = buildPayloadValidator(widgets);
    const { example } = buildExampleSchema(
      { datasource_id: "d", datasource_name: "d", enabled: true, widgets } as unknown as ResolvedKey,
      validator,
    );
    const keys = [...new Set(widgets.map((w) => w.data_key))];
    const valueOf = (key: string) => {
      const value = example[key] as Record<string, unknown> | number | undefined;
      const object = typeof value === "object" ? value : {};
      return fc.oneof(
        fc.constant(value),
        fc.jsonValue(),
        fc.constant({ ...object, extra: 1 }),
        fc.constantFrom(...Object.keys(object).concat("none")).map((drop) => {
          const copy = { ...object };
          delete copy[drop];
          return copy;
        }),
        fc.constant(Object.fromEntries(Object.entries(object).map(([k, v]) => [k, Array.isArray(v) ? [...v, 1] : v]))),
      );
    };
    return fc.record({
      widgets: fc.constant(widgets),
      payload: fc.tuple(...keys.map((key) => fc.option(valueOf(key), { nil: undefined }))).map((values) =>
        Object.fromEntries(keys.flatMap((key, i) => (values[i] === undefined ? [] : [[key, values[i]]])))
      ),
    });
  });
  fc.assert(
    fc.property(arb, ({ widgets, payload }) => {
      agree(widgets, payload);
      agree(widgets, payload, TINY_LIMITS);
    }),
    { numRuns: 500 },
  );
});
