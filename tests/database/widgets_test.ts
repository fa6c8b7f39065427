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
