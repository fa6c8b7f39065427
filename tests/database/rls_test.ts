/** Row level security and grants: who may read and write each table. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { type Actor, asRole, type Seeded, seedWorkspace, sqlState } from "../support/seed.ts";
import { asServiceRole, createDatasource, createWorkspace } from "../../local/provisioning.ts";

const TABLES = [
  "workspaces",
  "workspace_members",
  "datasources",
  "widgets",
  "datasource_api_keys",
  "datasource_values",
  "datasource_readings",
] as const;

function actors(s: Seeded): Record<string, Actor> {
  return {
    owner: { role: "authenticated", userId: s.owner },
    editor: { role: "authenticated", userId: s.editor },
    viewer: { role: "authenticated", userId: s.viewer },
    outsider: { role: "authenticated", userId: s.outsider },
    anon: { role: "anon" },
  };
}

async function seedWithValues(sql: import("postgres").Sql): Promise<Seeded> {
  const s = await seedWorkspace(sql);
  await sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${sql.json({ temperature: 1 })})`;
  return s;
}

Deno.test("members read every table of their workspace; outsiders see nothing; anon is refused", async () => {
  await using db = await createTestDatabase();
  const s = await seedWithValues(db.sql);
  const expected = { owner: "rows", editor: "rows", viewer: "rows", outsider: "none", anon: "42501" };
  for (const [who, actor] of Object.entries(actors(s))) {
    for (const table of TABLES) {
      const column = table === "datasource_api_keys" ? "id" : "*";
      const outcome = await asRole(db.sql, actor, (tx) => tx.unsafe(`select ${column} from public.${table}`))
        .then((rows) => (rows.length > 0 ? "rows" : "none"), (e) => e.code as string);
      assert.equal(outcome, expected[who as keyof typeof expected], `${who} reading ${table}`);
    }
  }
});

Deno.test("owners and editors manage datasources and widgets; viewers and outsiders cannot", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const canManage = { owner: true, editor: true, viewer: false, outsider: false, anon: false };
  for (const [who, actor] of Object.entries(actors(s))) {
    const allowed = canManage[who as keyof typeof canManage];
    const insertDatasource = await sqlState(
      asRole(
        db.sql,
        actor,
        (tx) => tx`insert into public.datasources (workspace_id, name) values (${s.workspaceId}, ${"by " + who})`,
      ),
    );
    assert.equal(insertDatasource, allowed ? "ok" : "42501", `${who} inserting a datasource`);

    const insertWidget = await sqlState(
      asRole(db.sql, actor, (tx) =>
        tx`insert into public.widgets (datasource_id, name, widget_type, data_key)
         values (${s.datasourceId}, 'w', 'SingleData', ${"k_" + who})`),
    );
    assert.equal(insertWidget, allowed ? "ok" : "42501", `${who} inserting a widget`);

    const updated = await asRole(
      db.sql,
      actor,
      (tx) => tx`update public.datasources set name = ${"renamed by " + who} where id = ${s.datasourceId}`,
    )
      .then((r) => r.count, (e) => e.code);
    assert.equal(updated, allowed ? 1 : who === "anon" ? "42501" : 0, `${who} updating a datasource`);
  }
});

Deno.test("only owners manage members", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const [who, actor] of Object.entries(actors(s))) {
    const state = await sqlState(
      asRole(
        db.sql,
        actor,
        (tx) =>
          tx`insert into public.workspace_members (workspace_id, user_id, role) values (${s.workspaceId}, ${s.outsider}, 'viewer')
         on conflict do nothing`,
      ),
    );
    assert.equal(state, who === "owner" ? "ok" : "42501", `${who} adding a member`);
  }
});

Deno.test("a user who creates a workspace becomes its owner", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const roles = await asRole(db.sql, { role: "authenticated", userId: s.outsider }, async (tx) => {
    const [ws] = await tx`insert into public.workspaces (name) values ('Mine') returning id`;
    return await tx`select role from public.workspace_members where workspace_id = ${ws!.id}`;
  });
  assert.deepEqual(roles.map((r) => r.role), ["owner"]);
});

Deno.test("nobody but ingest_write writes values, not even an owner or the service role", async () => {
  await using db = await createTestDatabase();
  const s = await seedWithValues(db.sql);
  const all = { ...actors(s), service_role: { role: "service_role" } as Actor };
  for (const [who, actor] of Object.entries(all)) {
    for (const table of ["datasource_values", "datasource_readings"]) {
      const insert = await sqlState(
        asRole(
          db.sql,
          actor,
          (tx) =>
            tx.unsafe(`insert into public.${table} (datasource_id, data_key, value, observed_at, received_at)
                   values ('${s.datasourceId}', 'temperature', '1', now(), now())`),
        ),
      );
      assert.equal(insert, "42501", `${who} inserting into ${table}`);
      const del = await sqlState(asRole(db.sql, actor, (tx) => tx.unsafe(`delete from public.${table}`)));
      assert.equal(del, "42501", `${who} deleting from ${table}`);
    }
  }
});

Deno.test("nobody selects key_hash or writes keys directly", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const all = { ...actors(s), service_role: { role: "service_role" } as Actor };
  for (const [who, actor] of Object.entries(all)) {
    assert.equal(
      await sqlState(asRole(db.sql, actor, (tx) => tx`select key_hash from public.datasource_api_keys`)),
      "42501",
      `${who} selecting key_hash`,
    );
    assert.equal(
      await sqlState(
        asRole(db.sql, actor, (tx) =>
          tx`insert into public.datasource_api_keys (datasource_id, name, prefix, key_hash)
           values (${s.datasourceId}, 'x', 'tw_00000000', ${"0".repeat(64)})`),
      ),
      "42501",
      `${who} inserting a key`,
    );
    assert.equal(
      await sqlState(asRole(db.sql, actor, (tx) => tx`update public.datasource_api_keys set revoked_at = null`)),
      "42501",
      `${who} un-revoking a key`,
    );
  }
});

Deno.test("only service_role executes ingest_resolve_key, ingest_write and ingest_write_batch", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const all = { ...actors(s), service_role: { role: "service_role" } as Actor };
  for (const [who, actor] of Object.entries(all)) {
    const expected = who === "service_role" ? "ok" : "42501";
    assert.equal(
      await sqlState(asRole(db.sql, actor, (tx) => tx`select public.ingest_resolve_key(${"0".repeat(64)})`)),
      expected,
      `${who} executing ingest_resolve_key`,
    );
    assert.equal(
      await sqlState(
        asRole(
          db.sql,
          actor,
          (tx) => tx`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${tx.json({ temperature: 2 })})`,
        ),
      ),
      expected,
      `${who} executing ingest_write`,
    );
    assert.equal(
      await sqlState(asRole(db.sql, actor, (tx) => tx`select public.ingest_write_batch('[]'::jsonb)`)),
      expected,
      `${who} executing ingest_write_batch`,
    );
  }
});

Deno.test("every table of public, private and any schema the migrations create has row level security enabled", async () => {
  await using db = await createTestDatabase();
  await using platform = await createTestDatabase({ migrations: false });
  // The schemas the migrations create: those of the migrated database that the platform fixture alone lacks,
  // but for supabase_migrations, the history the migration runner keeps (the Supabase CLI's, not exposed).
  const before = (await platform.sql`select nspname from pg_namespace`).map((r) => r.nspname as string);
  const schemas = (await db.sql`select nspname from pg_namespace
    where nspname <> all (${before}) and nspname <> 'supabase_migrations'`)
    .map((r) => r.nspname as string);
  assert.ok(schemas.includes("private"), `the migrations create the private schema (found ${schemas})`);
  const checked = [...new Set(["public", "private", ...schemas])];
  // Tables, partitioned tables and their partitions alike (relkind r and p; partitions are r).
  const tables = await db.sql`select n.nspname || '.' || c.relname as name, c.relrowsecurity as rls
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any (${checked}) and c.relkind in ('r', 'p') order by 1`;
  assert.ok(tables.some((t) => t.name === "private.idempotency_keys"), "the query sees private's tables");
  assert.deepEqual(tables.filter((t) => !t.rls).map((t) => t.name), [], `tables without RLS in ${checked}`);
});

Deno.test("the service role creates workspaces, datasources and widgets (local administration)", async () => {
  await using db = await createTestDatabase();
  const id = await asServiceRole(db.sql, async (tx) => createDatasource(tx, await createWorkspace(tx, "Ops")));
  const widgets = await db.sql`select data_key from public.widgets where datasource_id = ${id} order by data_key`;
  assert.deepEqual(widgets.map((w) => w.data_key), ["motor_stats", "production_output", "temperature"]);
});

Deno.test("workspace limits: owners change them, editors see them, viewers see only usage; nobody writes usage", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const set = (actor: Actor) =>
    asRole(
      db.sql,
      actor,
      (tx) =>
        tx`insert into public.workspace_limits (workspace_id, readings_per_day) values (${s.workspaceId}, 500)
        on conflict (workspace_id) do update set readings_per_day = excluded.readings_per_day`,
    )
      .then((r) => r.count, (e) => e.code);
  const seen = (actor: Actor, table: string) =>
    asRole(db.sql, actor, (tx) => tx`select count(*)::int as n from ${tx(table)}`).then((r) => r[0]!.n, (e) => e.code);
  const all = actors(s) as Record<"owner" | "editor" | "viewer" | "outsider" | "anon", Actor>;
  assert.equal(await set(all.editor), "42501", "an editor setting limits");
  assert.equal(await set(all.viewer), "42501", "a viewer setting limits");
  assert.equal(await set(all.owner), 1, "the owner setting limits");
  assert.deepEqual(
    await Promise.all(Object.values(all).map((actor) => seen(actor, "public.workspace_limits"))),
    [1, 1, 0, 0, "42501"],
  );
  assert.deepEqual(
    await Promise.all(Object.values(all).map((actor) => seen(actor, "public.workspace_usage"))),
    [1, 1, 1, 0, "42501"],
  );
  assert.equal(
    await sqlState(asRole(db.sql, all.owner, (tx) => tx`update public.workspace_usage set day_readings = 0`)),
    "42501",
  );
});

Deno.test("owners set a key's rate limit; editors, viewers and outsiders cannot; nothing else of a key is writable", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const expected = { owner: 1, editor: 0, viewer: 0, outsider: 0, anon: "42501" };
  for (const [who, actor] of Object.entries(actors(s))) {
    const updated = await asRole(
      db.sql,
      actor,
      (tx) => tx`update public.datasource_api_keys set rate_limit_per_second = 5 where id = ${s.keyId}`,
    )
      .then((r) => r.count, (e) => e.code);
    assert.equal(updated, expected[who as keyof typeof expected], `${who} setting a rate limit`);
  }
  const owner = { role: "authenticated", userId: s.owner } as const;
  assert.equal(
    await sqlState(asRole(db.sql, owner, (tx) => tx`update public.datasource_api_keys set scopes = '{ingest:read}'`)),
    "42501",
  );
});
