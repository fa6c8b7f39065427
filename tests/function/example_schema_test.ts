/** GET: the datasource's Example Schema, generated from its widgets. */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import fc from "fast-check";
import { addWidget, createApiKey, createDatasource, createWorkspace } from "../../local/provisioning.ts";
import { dataKeyShapes } from "../../supabase/functions/ingest-data/data_key_shape.ts";
import type { Widget } from "../../supabase/functions/ingest-data/store.ts";
import { sharedWidgetsArb } from "../support/arbitraries.ts";
import { createTestDatabase } from "../support/database.ts";
import { createTestFunction, ENDPOINT, postRequest } from "../support/function.ts";
import { createKey, seedWorkspace, sqlState } from "../support/seed.ts";

Deno.test("GET returns the example payload and JSON Schema; POSTing the example is a 200", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url);
  const res = await fn.handle(new Request(ENDPOINT, { headers: { "X-API-Key": s.apiKey } }));
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.datasource.id, s.datasourceId);
  assert.deepEqual(body.datasource.data_keys, ["motor_stats", "production_output", "temperature"]);
  assert.deepEqual(body.example, {
    temperature: 42.5,
    motor_stats: { rpm: 1500, vibration: 0.75 },
    production_output: { machines: ["Machine A", "Machine B", "Machine C"], units_per_hour: [112, 124, 98] },
  });
  const schema = body.json_schema;
  assert.equal(schema.type, "object");
  assert.equal(schema.additionalProperties, false);
  assert.equal(schema.minProperties, 1);
  assert.deepEqual(schema.properties.temperature, { type: ["number", "string"] });
  assert.deepEqual(schema.properties.motor_stats.required, ["rpm", "vibration"]);
  assert.equal(schema.properties.production_output.properties.units_per_hour.items.type, "number");

  const post = await fn.handle(postRequest(body.example, { key: s.apiKey }));
  assert.equal(post.status, 200);
  await post.body?.cancel();
});

Deno.test("GET works with an ingest:read key, which still cannot POST", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const reader = await createKey(db.sql, s.datasourceId, { scopes: ["ingest:read"] });
  await using fn = createTestFunction(db.url);
  const get = await fn.handle(new Request(ENDPOINT, { headers: { Authorization: `Bearer ${reader.apiKey}` } }));
  assert.equal(get.status, 200);
  await get.body?.cancel();
  const post = await fn.handle(postRequest({ temperature: 1 }, { key: reader.apiKey }));
  assert.equal(post.status, 403);
  await post.body?.cancel();
});

Deno.test("the Example Schema follows widget changes (new config_version)", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using fn = createTestFunction(db.url, { INGEST_KEY_CACHE_TTL_MS: "0" });
  await db.sql`insert into public.widgets (datasource_id, name, widget_type, data_key, settings)
    values (${s.datasourceId}, 'Trend', 'LineChart', 'trend', '{"labelsKey":"t","valuesKey":"v"}')`;
  const res = await fn.handle(new Request(ENDPOINT, { headers: { "X-API-Key": s.apiKey } }));
  const body = await res.json();
  assert.deepEqual(body.example.trend, { t: ["Machine A", "Machine B", "Machine C"], v: [112, 124, 98] });
  const post = await fn.handle(postRequest({ trend: { t: [1, 2], v: [3, 4] } }, { key: s.apiKey }));
  assert.equal(post.status, 200);
  await post.body?.cancel();
});

const ajv = new Ajv2020({ strict: false });

Deno.test("property: for any widgets the database accepts, POST accepts the Example Schema's example", async () => {
  await using db = await createTestDatabase();
  await using fn = createTestFunction(db.url);
  await fc.assert(
    fc.asyncProperty(sharedWidgetsArb, async (specs) => {
      const datasourceId = await createDatasource(db.sql, await createWorkspace(db.sql, "Shared"), { widgets: [] });
      const linked: Widget[] = [];
      for (const spec of specs) {
        // The database refuses exactly the widgets that would leave their DataKey unsatisfiable.
        const widget = { ...spec, settings: spec.settings as Record<string, string> } as Widget;
        const conflicts = dataKeyShapes([...linked, widget]).get(spec.data_key)!.kind === "conflict";
        const state = await sqlState(addWidget(db.sql, datasourceId, spec));
        assert.equal(state, conflicts ? "23514" : "ok", `${JSON.stringify(linked)} + ${JSON.stringify(spec)}`);
        if (!conflicts) linked.push(widget);
      }
      const { apiKey } = await createApiKey(db.sql, datasourceId, { scopes: ["ingest:write", "ingest:read"] });
      const get = await fn.handle(new Request(ENDPOINT, { headers: { "X-API-Key": apiKey } }));
      const { example, datasource, json_schema } = await get.json() as {
        example: Record<string, unknown>;
        datasource: { data_keys: string[] };
        json_schema: Record<string, unknown>;
      };
      assert.deepEqual(Object.keys(example).sort(), datasource.data_keys);
      // The JSON Schema says the same: the example is valid, a sub-key more or less is not.
      const validate = ajv.compile(json_schema);
      assert.ok(validate(example), JSON.stringify(validate.errors));
      for (const [dataKey, value] of Object.entries(example)) {
        if (typeof value !== "object" || value === null) continue;
        assert.ok(
          !validate({ ...example, [dataKey]: { ...(value as object), extra: [1] } }),
          `${dataKey}: extra sub-key`,
        );
        const [first] = Object.keys(value);
        const { [first!]: _dropped, ...fewer } = value as Record<string, unknown>;
        assert.ok(!validate({ ...example, [dataKey]: fewer }), `${dataKey}: missing ${first}`);
      }
      const post = await fn.handle(postRequest(example, { key: apiKey }));
      assert.equal(post.status, 200, `${JSON.stringify(linked)}: ${JSON.stringify(example)} -> ${await post.text()}`);
      const rows = await db
        .sql`select data_key, value from public.datasource_values where datasource_id = ${datasourceId}`;
      assert.deepEqual(Object.fromEntries(rows.map((r) => [r.data_key, r.value])), example);
    }),
    { numRuns: 60 },
  );
});
