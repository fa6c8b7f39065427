/**
 * Property-based tests (fast-check) on the real database: generated widget
 * configurations and payloads, their mutations, random JSON and hostile input.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Sql } from "postgres";
import { createApiKey, createDatasource, createWorkspace, type WidgetSpec } from "../../local/provisioning.ts";
import { caseArb } from "../support/arbitraries.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, postRequest } from "../support/function.ts";

async function setUp(sql: Sql, widgets: readonly WidgetSpec[]): Promise<{ datasourceId: string; apiKey: string }> {
  const datasourceId = await createDatasource(sql, await createWorkspace(sql, "Props"), { widgets });
  const { apiKey } = await createApiKey(sql, datasourceId);
  return { datasourceId, apiKey };
}

async function storedValues(sql: Sql, datasourceId: string): Promise<Record<string, unknown>> {
  const rows = await sql`select data_key, value from public.datasource_values where datasource_id = ${datasourceId}`;
  return Object.fromEntries(rows.map((r) => [r.data_key, r.value]));
}

Deno.test("property: a generated valid payload for a generated configuration is a 200 and stored exactly", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  await fc.assert(
    fc.asyncProperty(caseArb, async ({ widgets, payload }) => {
      const { datasourceId, apiKey } = await setUp(db.sql, widgets);
      const res = await fn.handle(postRequest(payload, { key: apiKey }));
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      // JSON has no -0: it travels and is stored as 0.
      assert.deepEqual(await storedValues(db.sql, datasourceId), JSON.parse(JSON.stringify(payload)));
    }),
    { numRuns: 40 },
  );
});

/** Ways to break a valid payload. */
const mutations: ((payload: Record<string, unknown>, widgets: WidgetSpec[]) => unknown)[] = [
  (p) => ({ ...p, not_a_widget: 1 }),
  (p) => ({ ...p, [Object.keys(p)[0]!]: true }),
  (p) => ({ ...p, [Object.keys(p)[0]!]: null }),
  (p) => ({ ...p, [Object.keys(p)[0]!]: [[]] }),
  (p) => [p],
  () => ({}),
  (p, widgets) => {
    const w = widgets.find((w) => w.data_key in p && w.widget_type !== "SingleData");
    if (!w) return { ...p, [Object.keys(p)[0]!]: { nested: { deeper: 1 } } };
    const value = { ...(p[w.data_key] as Record<string, unknown>) };
    const s = w.settings as Record<string, string>;
    if (w.widget_type === "DoubleData") delete value[s.primarySubKey!];
    else value[s.valuesKey!] = [...(value[s.valuesKey!] as number[]), 1];
    return { ...p, [w.data_key]: value };
  },
];

Deno.test("property: a mutated payload is a 400 with issues, never a 5xx, never a write", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  await fc.assert(
    fc.asyncProperty(caseArb, fc.nat({ max: mutations.length - 1 }), async ({ widgets, payload }, m) => {
      const { datasourceId, apiKey } = await setUp(db.sql, widgets);
      const mutated = mutations[m]!(payload as Record<string, unknown>, widgets);
      const res = await fn.handle(postRequest(mutated, { key: apiKey }));
      const body = await res.json();
      assert.equal(res.status, 400, `${JSON.stringify(mutated)} -> ${JSON.stringify(body)}`);
      assert.ok(body.issues.length > 0);
      assert.deepEqual(await storedValues(db.sql, datasourceId), {});
    }),
    { numRuns: 40 },
  );
});

Deno.test("property: random JSON and random text are never a 5xx, and a 4xx writes nothing", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  const { datasourceId, apiKey } = await setUp(db.sql, [
    { name: "t", widget_type: "SingleData", data_key: "temperature", settings: {} },
  ]);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.json(), fc.string(), fc.jsonValue().map((v) => JSON.stringify({ temperature: v }))),
      async (text) => {
        const before = await storedValues(db.sql, datasourceId);
        const res = await fn.handle(postRequest(text, { key: apiKey }));
        await res.body?.cancel();
        assert.ok(res.status < 500, `${text} -> ${res.status}`);
        if (res.status !== 200) assert.deepEqual(await storedValues(db.sql, datasourceId), before);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("hostile input: prototype keys, SQL, control characters, long strings, deep nesting, extreme numbers", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  const { datasourceId, apiKey } = await setUp(db.sql, [
    { name: "t", widget_type: "SingleData", data_key: "temperature", settings: {} },
    { name: "c", widget_type: "SingleData", data_key: "constructor", settings: {} },
    {
      name: "m",
      widget_type: "DoubleData",
      data_key: "motor",
      settings: { primarySubKey: "rpm", secondarySubKey: "vib" },
    },
  ]);
  const refused = [
    '{"__proto__": {"polluted": true}}',
    '{"temperature": 1, "__proto__": 1}',
    '{"motor": {"rpm": 1, "vib": 2, "__proto__": {"x": 1}}}',
    '{"toString": 1}',
    '{"temperature); drop table public.widgets; --": 1}',
    `{"temperature": "${"x".repeat(5000)}"}`,
    `{"temperature": ${"[".repeat(5000)}${"]".repeat(5000)}}`,
    '{"temperature": 1e400}',
    '{"temperature": NaN}',
    '{"temperature": "\\ud800"}',
    '{"temperature": "nul\\u0000byte"}',
    '{"motor": {"rpm": "\\udfff", "vib": 1}}',
    '{"temperature": true}',
  ];
  for (const body of refused) {
    const res = await fn.handle(postRequest(body, { key: apiKey }));
    const json = await res.json();
    assert.equal(res.status, 400, `${body.slice(0, 60)} -> ${JSON.stringify(json).slice(0, 200)}`);
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined, "prototype polluted");
  assert.deepEqual(await storedValues(db.sql, datasourceId), {});

  const accepted: [string, unknown][] = [
    ['{"temperature": "\'; drop table public.widgets; --"}', "'; drop table public.widgets; --"],
    ['{"temperature": "tab\\tnew\\nline\\u0001bell\\u0007"}', "tab\tnew\nline\u0001bell\u0007"],
    ['{"temperature": 1e308}', 1e308],
    ['{"temperature": -0}', 0],
    ['{"temperature": 5e-324}', 5e-324],
    ['{"temperature": 9007199254740993}', 9007199254740992],
    ['{"constructor": "ok"}', undefined],
    ['{"temperature": "ünïcödé ✓ 🚀"}', "ünïcödé ✓ 🚀"],
  ];
  for (const [body, stored] of accepted) {
    const res = await fn.handle(postRequest(body, { key: apiKey }));
    assert.equal(res.status, 200, `${body} -> ${await res.text()}`);
    if (stored !== undefined) assert.deepEqual((await storedValues(db.sql, datasourceId)).temperature, stored, body);
  }
  assert.equal((await storedValues(db.sql, datasourceId)).constructor, "ok");
  const [widgets] = await db.sql`select count(*)::int as n from public.widgets`;
  assert.equal(widgets!.n, 3, "the SQL in a value is only a value");
});
