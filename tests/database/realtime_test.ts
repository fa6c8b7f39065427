/** Realtime: who receives broadcasts; postgres_changes publishes nothing of the project's tables. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { asRole, seedWorkspace } from "../support/seed.ts";

Deno.test("members receive their datasource's broadcasts; outsiders and other topics get nothing", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json({ temperature: 1 })})`;
  const topic = `datasource:${s.datasourceId}`;
  const visible = async (userId: string, asTopic: string) =>
    await asRole(db.sql, { role: "authenticated", userId }, async (tx) => {
      // What Realtime does before it lets a client join a private channel.
      await tx`select set_config('realtime.topic', ${asTopic}, true)`;
      return (await tx`select count(*)::int as n from realtime.messages`)[0]!.n;
    });
  for (const member of [s.owner, s.editor, s.viewer]) assert.equal(await visible(member, topic), 1);
  assert.equal(await visible(s.outsider, topic), 0);
  assert.equal(await visible(s.owner, "datasource:not-a-uuid"), 0);
  assert.equal(await visible(s.owner, "other-topic"), 0);
});

Deno.test("a member authorized for one datasource's topic reads none of another datasource's stored broadcasts", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = await seedWorkspace(db.sql);
  // The owner of A is a member of B's workspace too: membership of B is not enough on A's topic.
  await db
    .sql`insert into public.workspace_members (workspace_id, user_id, role) values (${b.workspaceId}, ${a.owner}, 'viewer')`;
  const c = await seedWorkspace(db.sql);
  for (const s of [a, b, c]) {
    await db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json({ temperature: 1 })})`;
  }
  const topics = await asRole(db.sql, { role: "authenticated", userId: a.owner }, async (tx) => {
    await tx`select set_config('realtime.topic', ${`datasource:${a.datasourceId}`}, true)`;
    return (await tx`select topic from realtime.messages`).map((r) => r.topic);
  });
  assert.deepEqual(topics, [`datasource:${a.datasourceId}`]);
});

Deno.test("postgres_changes tells nobody about datasource_values: not even a DELETE's key is published", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const slot = `test_${db.name.slice(-12)}`;
  await db.sql`select pg_create_logical_replication_slot(${slot}, 'pgoutput')`;
  try {
    // Decoding reads flushed WAL only; the test server runs with synchronous_commit off.
    await db.sql.begin(async (tx) => {
      await tx`set local synchronous_commit = on`;
      await tx`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${tx.json({ temperature: 21.5 })})`;
      await tx`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${tx.json({ temperature: 22.5 })})`;
    });
    // Supabase sends DELETE events to every subscriber, without row level
    // security: deleting the datasource (its values with it) must publish nothing.
    await db.sql.begin(async (tx) => {
      await tx`set local synchronous_commit = on`;
      await tx`delete from public.datasources where id = ${s.datasourceId}`;
    });
    const changes = await db.sql`select data from pg_logical_slot_get_binary_changes(${slot}, null, null,
      'proto_version', '1', 'publication_names', 'supabase_realtime')`;
    const text = changes.map((c) => new TextDecoder().decode(c.data)).join("\n");
    assert.ok(!text.includes("datasource_values"), "no relation message for datasource_values");
    assert.ok(!text.includes(s.datasourceId), "no datasource id");
    assert.ok(!text.includes("temperature") && !text.includes("21.5"), "no DataKey, no value");
    const [published] = await db.sql`select count(*)::int as n from pg_publication_tables
      where pubname = 'supabase_realtime' and schemaname = 'public'`;
    assert.equal(published!.n, 0);
  } finally {
    await db.sql`select pg_drop_replication_slot(${slot})`;
  }
});
