/** The database rejects widgets whose settings do not fit their type. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { seedWorkspace, sqlState } from "../support/seed.ts";

const INVALID: [string, string, string, unknown][] = [
  ["unknown type", "Gauge", "k", {}],
  ["empty data_key", "SingleData", "", {}],
  ["data_key with a dot", "SingleData", "a.b", {}],
  ["data_key starting with a digit", "SingleData", "1abc", {}],
  ["data_key of 65 characters", "SingleData", "a".repeat(65), {}],
  ["data_key __proto__", "SingleData", "__proto__", {}],
  ["settings not an object", "SingleData", "k", []],
  ["DoubleData without settings", "DoubleData", "k", {}],
  ["DoubleData without secondarySubKey", "DoubleData", "k", { primarySubKey: "rpm" }],
  ["DoubleData with equal sub-keys", "DoubleData", "k", { primarySubKey: "rpm", secondarySubKey: "rpm" }],
  ["DoubleData with an empty sub-key", "DoubleData", "k", { primarySubKey: "", secondarySubKey: "v" }],
  ["DoubleData with a numeric sub-key", "DoubleData", "k", { primarySubKey: 1, secondarySubKey: "v" }],
  ["BarChart without valuesKey", "BarChart", "k", { labelsKey: "machines" }],
  ["BarChart with equal keys", "BarChart", "k", { labelsKey: "x", valuesKey: "x" }],
  ["LineChart without settings", "LineChart", "k", {}],
  ["LineChart with a blank key", "LineChart", "k", { labelsKey: " ", valuesKey: "y" }],
  ["LineChart with DoubleData settings", "LineChart", "k", { primarySubKey: "a", secondarySubKey: "b" }],
];

Deno.test("each invalid widget is rejected by a check constraint", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const [label, type, key, settings] of INVALID) {
    const state = await sqlState(
      db.sql`insert into public.widgets (datasource_id, name, widget_type, data_key, settings)
      values (${s.datasourceId}, 'w', ${type}, ${key}, ${db.sql.json(settings as never)})`,
    );
    assert.equal(state, "23514", label);
  }
});

Deno.test("valid widgets of every type are accepted, and changing widgets bumps config_version", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql, { widgets: [] });
  const version = async () =>
    (await db.sql`select config_version from public.datasources where id = ${s.datasourceId}`)[0]!.config_version;
  const before = BigInt(await version());
  const [w] = await db.sql`insert into public.widgets (datasource_id, name, widget_type, data_key, settings) values
    (${s.datasourceId}, 'a', 'SingleData', 'temperature', '{}'),
    (${s.datasourceId}, 'b', 'DoubleData', 'motor_stats', '{"primarySubKey":"rpm","secondarySubKey":"vibration"}'),
    (${s.datasourceId}, 'c', 'BarChart', 'production_output', '{"labelsKey":"machines","valuesKey":"units_per_hour"}'),
    (${s.datasourceId}, 'd', 'LineChart', 'trend', '{"labelsKey":"t","valuesKey":"v"}')
    returning id`;
  const afterInsert = BigInt(await version());
  assert.equal(afterInsert, before + 4n);
  await db
    .sql`update public.widgets set settings = '{"primarySubKey":"rpm","secondarySubKey":"temp"}' where data_key = 'motor_stats'`;
  assert.equal(BigInt(await version()), afterInsert + 1n);
  await db.sql`delete from public.widgets where id = ${w!.id}`;
  assert.equal(BigInt(await version()), afterInsert + 2n);
});

Deno.test("widgets may share a DataKey unless no value could satisfy them all", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const add = (name: string, type: string, settings: unknown) =>
    sqlState(db.sql`insert into public.widgets (datasource_id, name, widget_type, data_key, settings)
      values (${s.datasourceId}, ${name}, ${type}, 'production_output', ${db.sql.json(settings as never)})`);
  // The seed has BarChart production_output {machines, units_per_hour}.
  assert.equal(await add("shifts", "LineChart", { labelsKey: "shifts", valuesKey: "defects" }), "ok");
  assert.equal(await add("rates", "DoubleData", { primarySubKey: "rate", secondarySubKey: "target" }), "ok");
  assert.equal(await add("swapped", "BarChart", { labelsKey: "units_per_hour", valuesKey: "machines" }), "ok");
  assert.equal(await add("single", "SingleData", {}), "23514");
  assert.equal(
    await add("scalar on array", "DoubleData", { primarySubKey: "machines", secondarySubKey: "x" }),
    "23514",
  );
  assert.equal(await add("array on scalar", "LineChart", { labelsKey: "t", valuesKey: "target" }), "23514");
  const error = await db.sql`insert into public.widgets (datasource_id, name, widget_type, data_key, settings)
    values (${s.datasourceId}, 'Gauge', 'SingleData', 'motor_stats', '{}')`.catch((e) => e);
  assert.match(String(error.message), /^Widget "Gauge" cannot share DataKey "motor_stats" with widget/);
  // Moving a widget onto a DataKey is checked too.
  const [row] = await db.sql`select id from public.widgets where data_key = 'temperature'`;
  assert.equal(
    await sqlState(db.sql`update public.widgets set data_key = 'motor_stats' where id = ${row!.id}`),
    "23514",
  );
});
