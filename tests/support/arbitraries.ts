/**
 * fast-check arbitraries shared by the property tests: widget configurations
 * and the valid payloads for them.
 */
import fc from "fast-check";
import type { WidgetSpec } from "../../local/provisioning.ts";

export const name = fc.stringMatching(/^[a-z][a-z0-9_]{0,11}$/);
export const scalar = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.string({ maxLength: 40 }),
);
export const label = fc.oneof(fc.string({ maxLength: 20 }), fc.integer());

const TYPES = ["SingleData", "DoubleData", "BarChart", "LineChart"] as const;

/** A widget of `type` on `dataKey`, reading sub-keys `a` and `b` when its type has them. */
function widgetOf(dataKey: string, type: string, [a, b]: string[], widgetName = dataKey): WidgetSpec {
  const settings = type === "SingleData"
    ? {}
    : type === "DoubleData"
    ? { primarySubKey: a, secondarySubKey: b }
    : { labelsKey: a, valuesKey: b };
  return { name: widgetName, widget_type: type, data_key: dataKey, settings };
}

/** 1 to 5 widgets with distinct DataKeys, each of a random type with valid settings. */
export const widgetsArb: fc.Arbitrary<WidgetSpec[]> = fc.uniqueArray(name, { minLength: 1, maxLength: 5 }).chain((
  keys,
) =>
  fc.tuple(
    ...keys.map((dataKey) =>
      fc.tuple(fc.constantFrom(...TYPES), fc.uniqueArray(name, { minLength: 2, maxLength: 2 }))
        .map(([type, subKeys]) => widgetOf(dataKey, type, subKeys))
    ),
  )
);

/** A valid value for one widget. */
export function valueArb(widget: WidgetSpec): fc.Arbitrary<unknown> {
  const s = widget.settings as Record<string, string>;
  switch (widget.widget_type) {
    case "SingleData":
      return scalar;
    case "DoubleData":
      return fc.record({ [s.primarySubKey!]: scalar, [s.secondarySubKey!]: scalar });
    default:
      return fc.nat({ max: 8 }).chain((n) =>
        fc.record({
          [s.labelsKey!]: fc.array(label, { minLength: n, maxLength: n }),
          [s.valuesKey!]: fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: n, maxLength: n }),
        })
      );
  }
}

/** A configuration and a valid payload for it (a non-empty subset of its DataKeys). */
export const caseArb = widgetsArb.chain((widgets) =>
  fc.subarray(widgets, { minLength: 1 }).chain((chosen) =>
    fc.record(Object.fromEntries(chosen.map((w) => [w.data_key, valueArb(w)]))).map((payload) => ({ widgets, payload }))
  )
);

/**
 * 1 to 8 widgets on at most 3 DataKeys, with sub-keys from a pool of 4 names:
 * DataKeys are often shared, sub-keys often overlap, and some combinations no
 * value can satisfy (a SingleData beside a chart, a sub-key both scalar and array).
 */
export const sharedWidgetsArb: fc.Arbitrary<WidgetSpec[]> = fc.array(
  fc.tuple(
    fc.constantFrom("line", "motor", "output"),
    fc.constantFrom(...TYPES),
    fc.uniqueArray(fc.constantFrom("a", "b", "machines", "units"), { minLength: 2, maxLength: 2 }),
  ).map(([dataKey, type, subKeys]) => widgetOf(dataKey, type, subKeys, `${type} on ${dataKey}`)),
  { minLength: 1, maxLength: 8 },
);
