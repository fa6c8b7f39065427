/** Workspace membership rules: membership alone grants access; a workspace always keeps an owner. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { asRole, createUsers, seedWorkspace, sqlState } from "../support/seed.ts";

Deno.test("a creator removed from their workspace no longer reads it; insert ... returning still works", async () => {
  await using db = await createTestDatabase();
  const [creator, other] = await createUsers(db.sql, 2);
  const me = { role: "authenticated", userId: creator! } as const;
  const created = await asRole(
    db.sql,
    me,
    (tx) => tx`insert into public.workspaces (name) values ('Mine') returning *`,
  );
  assert.equal(created.length, 1);
  const id = created[0]!.id as string;
  // Later transactions: visible through the owner membership the trigger added.
  assert.equal((await asRole(db.sql, me, (tx) => tx`select id from public.workspaces where id = ${id}`)).length, 1);
  await asRole(
    db.sql,
    me,
    (tx) => tx`insert into public.workspace_members (workspace_id, user_id, role) values (${id}, ${other!}, 'owner')`,
  );
  await asRole(
    db.sql,
    { role: "authenticated", userId: other! },
    (tx) => tx`delete from public.workspace_members where workspace_id = ${id} and user_id = ${creator!}`,
  );
  assert.equal((await asRole(db.sql, me, (tx) => tx`select id from public.workspaces where id = ${id}`)).length, 0);
});

Deno.test("the last owner can neither leave nor be demoted; with two owners one may; deleting the workspace works", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const owner = { role: "authenticated", userId: s.owner } as const;
  const leave = (userId: string) =>
    sqlState(asRole(
      db.sql,
      owner,
      (tx) => tx`delete from public.workspace_members where workspace_id = ${s.workspaceId} and user_id = ${userId}`,
    ));
  const setRole = (userId: string, role: string) =>
    sqlState(asRole(
      db.sql,
      owner,
      (tx) =>
        tx`update public.workspace_members set role = ${role} where workspace_id = ${s.workspaceId} and user_id = ${userId}`,
    ));
  assert.equal(await leave(s.owner), "23514");
  assert.equal(await setRole(s.owner, "viewer"), "23514");
  // Not even the service role (or a superuser) leaves a workspace without an owner.
  assert.equal(
    await sqlState(
      db.sql`delete from public.workspace_members where workspace_id = ${s.workspaceId} and role = 'owner'`,
    ),
    "23514",
  );
  assert.equal(await leave(s.viewer), "ok");
  assert.equal(await setRole(s.editor, "owner"), "ok");
  assert.equal(await setRole(s.owner, "viewer"), "ok");
  const [row] = await db.sql`select user_id from public.workspace_members where workspace_id = ${s.workspaceId}
    and role = 'owner'`;
  assert.equal(row!.user_id, s.editor);
  const editorNowOwner = { role: "authenticated", userId: s.editor } as const;
  assert.equal(
    await sqlState(
      asRole(db.sql, editorNowOwner, (tx) => tx`delete from public.workspaces where id = ${s.workspaceId}`),
    ),
    "ok",
  );
  const [left] = await db
    .sql`select count(*)::int as n from public.workspace_members where workspace_id = ${s.workspaceId}`;
  assert.equal(left!.n, 0);
});

Deno.test("two owners demoting each other at once: one succeeds, the workspace keeps an owner", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`update public.workspace_members set role = 'owner' where user_id = ${s.editor}`;
  const demote = (actor: string, target: string) =>
    sqlState(asRole(db.sql, { role: "authenticated", userId: actor }, async (tx) => {
      await tx`update public.workspace_members set role = 'viewer' where workspace_id = ${s.workspaceId}
        and user_id = ${target}`;
      await tx`select pg_sleep(0.2)`;
    }));
  const outcomes = await Promise.all([demote(s.owner, s.editor), demote(s.editor, s.owner)]);
  assert.deepEqual(outcomes.sort(), ["23514", "ok"]);
  const [row] = await db.sql`select count(*)::int as n from public.workspace_members
    where workspace_id = ${s.workspaceId} and role = 'owner'`;
  assert.equal(row!.n, 1);
});

Deno.test("deleting the last owner's account is not blocked", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  assert.equal(await sqlState(db.sql`delete from auth.users where id = ${s.owner}`), "ok");
});
