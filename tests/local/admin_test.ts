/**
 * `deno task admin` run as a user runs it, on a test database: users and
 * workspace members, datasources going to the demo workspace (so that the
 * twin view shows them), widget errors in words, and tokens.
 */
import assert from "node:assert/strict";
import { verifyToken } from "../../local/jwt.ts";
import { DEMO_USER, seedDemo } from "../../local/demo.ts";
import { createTestDatabase } from "../support/database.ts";
import { asRole, createUsers, seedWorkspace } from "../support/seed.ts";

const SECRET = crypto.randomUUID() + crypto.randomUUID();

async function admin(databaseUrl: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "local/admin.ts", ...args],
    cwd: new URL("../../", import.meta.url),
    env: { DATABASE_URL: databaseUrl, SUPABASE_JWT_SECRET: SECRET, NO_COLOR: "1" },
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Runs admin and expects it to succeed; returns its output. */
async function ok(databaseUrl: string, args: string[]): Promise<string> {
  const run = await admin(databaseUrl, args);
  assert.equal(run.code, 0, `admin ${args.join(" ")}: ${run.stderr}`);
  return run.stdout;
}

/** Runs admin and expects it to fail with one line matching `message`, never naming a constraint. */
async function refused(databaseUrl: string, args: string[], message: RegExp): Promise<void> {
  const run = await admin(databaseUrl, args);
  assert.equal(run.code, 1, `admin ${args.join(" ")} succeeded: ${run.stdout}`);
  assert.match(run.stderr, message);
  assert.doesNotMatch(run.stderr, /constraint|_check|_fkey|widgets_|violates|\n/, run.stderr);
}

/** Demo seeded as `deno task dev` does it; the key file in a temporary folder. */
async function withDemo(sql: Parameters<typeof seedDemo>[0]) {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-admin-" });
  try {
    return await seedDemo(sql, { keyFile: `${dir}/demo_key` });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("admin users and members: create a user, add them by email, change their role, remove them", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const created = await ok(db.url, ["users", "create", "Ada@Example.test"]);
  const id = created.match(/^Created user Ada@Example\.test: ([0-9a-f-]{36})$/m)?.[1];
  assert.ok(id, created);
  assert.match(created, new RegExp(`deno task admin token ${id}`));
  assert.match(await ok(db.url, ["users"]), /Ada@Example\.test/);
  await refused(
    db.url,
    ["users", "create", "ada@example.test"],
    /^admin: Cannot create user: ada@example\.test already exists/,
  );
  await refused(db.url, ["users", "create", "ada"], /^admin: Cannot create user: "ada" is not an email address$/);

  assert.equal(
    await ok(db.url, ["members", "add", s.workspaceId, "ada@example.test", "--role", "editor"]),
    'Added ada@example.test as editor of workspace "Plant"',
  );
  const role = async () =>
    (await db.sql`select role from public.workspace_members where workspace_id = ${s.workspaceId} and user_id = ${id}`)[
      0
    ]?.role;
  assert.equal(await role(), "editor");
  assert.match(await ok(db.url, ["members", s.workspaceId]), /Ada@Example\.test.*editor/);
  assert.match(await ok(db.url, ["users"]), /Plant \(editor\)/);
  await refused(
    db.url,
    ["members", "add", s.workspaceId, "ada@example.test"],
    /^admin: Cannot add member: ada@example\.test is already editor of "Plant": use members set-role$/,
  );
  await refused(
    db.url,
    ["members", "add", s.workspaceId, "nobody@example.test"],
    /^admin: Cannot add member: no user nobody@example\.test in auth\.users \(create one: deno task admin users create nobody@example\.test\)$/,
  );
  await refused(
    db.url,
    ["members", "add", s.workspaceId, "ada@example.test", "--role", "admin"],
    /^admin: Cannot add member: the role must be owner, editor, viewer \(not "admin"\)$/,
  );
  await refused(
    db.url,
    ["members", "add", "Plant", "ada@example.test"],
    /^admin: members add: "Plant" is not a workspace id/,
  );
  await refused(
    db.url,
    ["members", crypto.randomUUID()],
    /^admin: Cannot list members: no workspace [0-9a-f-]{36} \(deno task admin workspaces lists them\)$/,
  );

  assert.equal(
    await ok(db.url, ["members", "set-role", s.workspaceId, "ada@example.test", "viewer"]),
    'ada@example.test is now viewer of workspace "Plant"',
  );
  assert.equal(await role(), "viewer");
  // The last owner stays: the database's own words, and nothing changes.
  const ownerEmail = `${s.owner}@example.test`;
  await refused(
    db.url,
    ["members", "set-role", s.workspaceId, ownerEmail, "viewer"],
    /^admin: Cannot change role: Cannot remove the last owner of a workspace: make another member owner first/,
  );
  await refused(
    db.url,
    ["members", "remove", s.workspaceId, ownerEmail],
    /^admin: Cannot remove member: Cannot remove the last owner/,
  );
  const [owner] = await db.sql`select role from public.workspace_members where user_id = ${s.owner}`;
  assert.equal(owner!.role, "owner");

  assert.equal(
    await ok(db.url, ["members", "remove", s.workspaceId, "ada@example.test"]),
    'Removed ada@example.test from workspace "Plant"',
  );
  assert.equal(await role(), undefined);
});

Deno.test("admin create-datasource: into the demo workspace unless --workspace says otherwise; the twin view's user sees it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const count = async () => (await db.sql`select count(*)::int as n from public.datasources`)[0]!.n;
  const before = await count();
  await refused(
    db.url,
    ["create-datasource", "Press 7"],
    /^admin: Cannot create datasource: there is no demo workspace \(deno task dev creates it\): pass --workspace <workspace-id>/,
  );
  assert.equal(await count(), before, "nothing created");

  const demo = await withDemo(db.sql);
  const made = await ok(db.url, ["create-datasource", "Press 7", "--doc-widgets"]);
  const id = made.match(/^Created datasource Press 7 in workspace "Demo": ([0-9a-f-]{36})$/m)?.[1];
  assert.ok(id, made);
  assert.match(made, new RegExp(`the twin view shows it \\(\\?datasource=${id}\\)`));
  // What the twin view lists for the demo user (DEMO_ACCESS_TOKEN), through RLS.
  const [row] = await asRole(
    db.sql,
    { role: "authenticated", userId: demo.userId },
    (tx) => tx`select public.twin_datasources() as list`,
  );
  const listed = (row!.list as { id: string; widgets: unknown[] }[]).map((d) => [d.id, d.widgets.length]);
  assert.deepEqual(listed.sort(), [[demo.datasourceId, 3], [id, 3]].sort());

  const elsewhere = await ok(db.url, ["create-datasource", "Oven", "--workspace", s.workspaceId]);
  const ovenId = elsewhere.match(/in workspace "Plant": ([0-9a-f-]{36})/)?.[1];
  assert.ok(ovenId, elsewhere);
  assert.match(elsewhere, new RegExp(`deno task admin members add ${s.workspaceId} ${DEMO_USER.email}`));
  const [oven] = await db.sql`select workspace_id from public.datasources where id = ${ovenId!}`;
  assert.equal(oven!.workspace_id, s.workspaceId);

  const now = await count();
  await refused(
    db.url,
    ["create-datasource", "X", "--workspace", crypto.randomUUID()],
    /^admin: Cannot create datasource: no workspace /,
  );
  await refused(
    db.url,
    ["create-datasource", "X", "--workspace", "Demo"],
    /^admin: Cannot create datasource: --workspace: "Demo" is not a workspace id/,
  );
  assert.equal(await count(), now, "nothing created");
  const workspaces = await ok(db.url, ["workspaces"]);
  assert.match(workspaces, new RegExp(`"${s.workspaceId}" │ "Plant" │ +3 │ +2 │`));
  assert.match(workspaces, /"Demo" +│ +1 │ +2 │/);
});

Deno.test("admin add-widget: refusals name the settings the type needs and the valid types, never a constraint", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const widgets = async () => (await db.sql`select count(*)::int as n from public.widgets`)[0]!.n;
  const before = await widgets();
  const add = (...args: string[]) => ["add-widget", s.datasourceId, ...args];
  await refused(
    db.url,
    add("DoubleData", "spindle"),
    /^admin: Cannot add widget: DoubleData needs settings primarySubKey and secondarySubKey: two different names, each a letter, then up to 63 letters, digits, _ or - \(e\.g\. primarySubKey=rpm secondarySubKey=vibration\)$/,
  );
  await refused(
    db.url,
    add("BarChart", "shifts", "labelsKey=a", "valuesKey=a"),
    /^admin: Cannot add widget: BarChart needs settings labelsKey and valuesKey: two different names/,
  );
  await refused(
    db.url,
    add("LineChart", "trend", "labelKey=t", "valuesKey=v"),
    /^admin: Cannot add widget: LineChart has no setting labelKey; LineChart needs settings labelsKey and valuesKey$/,
  );
  await refused(
    db.url,
    add("SingleData", "t", "primarySubKey=x"),
    /^admin: Cannot add widget: SingleData has no setting primarySubKey; SingleData takes no settings$/,
  );
  await refused(
    db.url,
    add("Gauge", "t"),
    /^admin: Cannot add widget: unknown widget type "Gauge"; the types are SingleData, DoubleData, BarChart, LineChart$/,
  );
  await refused(
    db.url,
    add("SingleData", "1st"),
    /^admin: Cannot add widget: the DataKey "1st" must be a letter, then up to 63 letters, digits, _ or -$/,
  );
  await refused(
    db.url,
    add("DoubleData", "x", "primarySubKey"),
    /^admin: Cannot add widget: "primarySubKey" is not a setting=value/,
  );
  // The shared-DataKey trigger: its own words.
  await refused(
    db.url,
    add("SingleData", "motor_stats"),
    /^admin: Cannot add widget: Widget "motor_stats" cannot share DataKey "motor_stats" with widget "Motor": a SingleData takes a number or a string/,
  );
  await refused(
    db.url,
    ["add-widget", crypto.randomUUID(), "SingleData", "t"],
    /^admin: Cannot add widget: no datasource [0-9a-f-]{36} \(deno task admin datasources lists them\)$/,
  );
  await refused(
    db.url,
    ["add-widget", "press-7", "SingleData", "t"],
    /^admin: Cannot add widget: "press-7" is not a datasource id/,
  );
  assert.equal(await widgets(), before, "nothing linked");

  assert.match(
    await ok(db.url, add("DoubleData", "spindle", "primarySubKey=rpm", "secondarySubKey=load")),
    /^Linked DoubleData widget on "spindle": /,
  );
  assert.equal(await widgets(), before + 1);
});

Deno.test("admin token mints an authenticated token for a user; an unknown user is refused", async () => {
  await using db = await createTestDatabase();
  const [user] = await createUsers(db.sql, 1);
  const minted = await admin(db.url, ["token", user!, "--expires-in", "120"]);
  assert.equal(minted.code, 0, minted.stderr);
  const claims = await verifyToken(minted.stdout, SECRET);
  assert.deepEqual([claims.role, claims.sub, claims.aud], ["authenticated", user, "authenticated"]);
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 120) < 10);

  const unknown = await admin(db.url, ["token", crypto.randomUUID()]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^admin: No user [0-9a-f-]{36} in auth\.users$/);
});
