/** twin_datasources(): the twin view's list of the caller's datasources and their widgets. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { asRole, createUsers, DOC_WIDGETS, seedWorkspace, sqlState } from "../support/seed.ts";
import { asServiceRole, createDatasource, createWorkspace } from "../../local/provisioning.ts";
import { startTestStack } from "../support/stack.ts";

interface Listed {
  id: string;
  name: string;
  enabled: boolean;
  workspace_id: string;
  workspace_name: string;
  widgets: { id: string; name: string; widget_type: string; data_key: string; settings: unknown }[];
}

async function list(sql: import("postgres").Sql, userId: string): Promise<Listed[]> {
  const [row] = await asRole(
    sql,
    { role: "authenticated", userId },
    (tx) => tx`select public.twin_datasources() as list`,
  );
  return row!.list as Listed[];
}

Deno.test("a member gets the workspace's datasources with their widgets, in creation order", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const userId of [s.owner, s.editor, s.viewer]) {
    const listed = await list(db.sql, userId);
    assert.equal(listed.length, 1);
    const [ds] = listed;
    assert.deepEqual(
      { ...ds, widgets: ds!.widgets.map(({ id: _, ...w }) => w) },
      {
        id: s.datasourceId,
        name: "Line 1",
        enabled: true,
        workspace_id: s.workspaceId,
        workspace_name: "Plant",
        widgets: DOC_WIDGETS.map((w) => ({ ...w })),
      },
    );
    assert.ok(ds!.widgets.every((w) => /^[0-9a-f-]{36}$/.test(w.id)));
  }
});

Deno.test("a user of two workspaces gets both, ordered by workspace then name; others' datasources never", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const [foreignOwner] = await createUsers(db.sql, 1);
  const foreign = await asServiceRole(db.sql, async (tx) => {
    const other = await createWorkspace(tx, "Annex");
    const foreign = await createWorkspace(tx, "Elsewhere");
    await tx`insert into public.workspace_members (workspace_id, user_id, role)
      values (${other}, ${s.viewer}, 'viewer'), (${foreign}, ${foreignOwner!}, 'owner')`;
    await createDatasource(tx, other, { name: "Press", widgets: [] });
    await createDatasource(tx, other, { name: "Oven" });
    await createDatasource(tx, foreign, { name: "Secret" });
    return foreign;
  });
  const listed = await list(db.sql, s.viewer);
  assert.deepEqual(listed.map((d) => [d.workspace_name, d.name, d.widgets.length]), [
    ["Annex", "Oven", 3],
    ["Annex", "Press", 0],
    ["Plant", "Line 1", 3],
  ]);
  assert.ok(listed.every((d) => d.workspace_id !== foreign));
  assert.deepEqual((await list(db.sql, s.owner)).map((d) => d.name), ["Line 1"]);
  assert.deepEqual((await list(db.sql, foreignOwner!)).map((d) => d.name), ["Secret"]);
});

Deno.test("an outsider gets an empty list; anon and service_role may not call it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  assert.deepEqual(await list(db.sql, s.outsider), []);
  for (const role of ["anon", "service_role"] as const) {
    const state = await sqlState(asRole(db.sql, { role }, (tx) => tx`select public.twin_datasources()`));
    assert.equal(state, "42501", role);
  }
});

Deno.test("a member removed from the workspace no longer gets its datasources", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`delete from public.workspace_members where workspace_id = ${s.workspaceId} and user_id = ${s.viewer}`;
  assert.deepEqual(await list(db.sql, s.viewer), []);
});

Deno.test("the page's call, supabase.rpc('twin_datasources') through the REST stand-in, lists the member's datasources", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await using stack = await startTestStack(db.url);
  const viewerToken = await stack.tokenFor(s.viewer);
  const viewer = stack.client(() => viewerToken);
  const { data, error } = await viewer.rpc("twin_datasources");
  assert.equal(error, null);
  assert.deepEqual((data as Listed[]).map((d) => [d.id, d.widgets.map((w) => w.data_key)]), [
    [s.datasourceId, DOC_WIDGETS.map((w) => w.data_key)],
  ]);
  const outsiderToken = await stack.tokenFor(s.outsider);
  const outsider = stack.client(() => outsiderToken);
  assert.deepEqual((await outsider.rpc("twin_datasources")).data, []);
  const anon = await stack.client(() => stack.anonKey).rpc("twin_datasources");
  assert.equal(anon.status, 401);
});
