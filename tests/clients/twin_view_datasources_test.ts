/** Which datasource the twin view opens. */
import assert from "node:assert/strict";
import { chooseDatasource, datasourceLabel } from "../../clients/twin_view/datasources.ts";
import type { TwinDatasource } from "../../clients/twin_view/types.ts";

const datasource = (id: string, name: string): TwinDatasource => ({
  id,
  name,
  enabled: true,
  workspace_id: "w",
  workspace_name: "Plant",
  widgets: [],
});
const list = [datasource("a", "Line 1"), datasource("b", "Line 2")];

Deno.test("?datasource=<id> opens that datasource; without it the first one opens", () => {
  assert.deepEqual(chooseDatasource(list, "b"), { datasource: list[1] });
  assert.deepEqual(chooseDatasource(list, null), { datasource: list[0] });
  assert.deepEqual(chooseDatasource(list, ""), { datasource: list[0] });
});

Deno.test("a datasource that is not the user's, or none at all, is explained instead of shown", () => {
  const other = chooseDatasource(list, "c");
  assert.ok("problem" in other && other.problem.includes("Datasource c is not one of yours"));
  const none = chooseDatasource([], null);
  assert.ok("problem" in none && /not a member of any workspace with a datasource/.test(none.problem));
});

Deno.test("the picker names a datasource by workspace and name", () => {
  assert.equal(datasourceLabel(list[0]!), "Plant / Line 1");
});
