/** create_datasource_api_key and revoke_datasource_api_key. */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { asRole, seedWorkspace, sqlState } from "../support/seed.ts";

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("owners and editors create keys: tw_ + 64 hex digits, returned once, only the SHA-256 stored", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const userId of [s.owner, s.editor]) {
    const [key] = await asRole(
      db.sql,
      { role: "authenticated", userId },
      (tx) =>
        tx`select * from public.create_datasource_api_key(${s.datasourceId}, 'gateway', ${[
          "ingest:write",
          "ingest:read",
        ]})`,
    );
    assert.match(key!.api_key, /^tw_[0-9a-f]{64}$/);
    assert.equal(key!.prefix, key!.api_key.slice(0, 11));
    const [stored] = await db.sql`select to_jsonb(k) as row from public.datasource_api_keys k where id = ${key!.id}`;
    assert.equal(stored!.row.key_hash, await sha256Hex(key!.api_key));
    assert.ok(!JSON.stringify(stored!.row).includes(key!.api_key.slice(11)), "plaintext stored");
    assert.deepEqual(stored!.row.scopes, ["ingest:write", "ingest:read"]);
  }
});

Deno.test("two keys never collide", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const keys = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const [k] = await asRole(
      db.sql,
      { role: "service_role" },
      (tx) => tx`select api_key from public.create_datasource_api_key(${s.datasourceId}, ${"k" + i})`,
    );
    keys.add(k!.api_key);
  }
  assert.equal(keys.size, 50);
});

Deno.test("viewers, outsiders and anon cannot create keys", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  for (const userId of [s.viewer, s.outsider]) {
    const state = await sqlState(
      asRole(
        db.sql,
        { role: "authenticated", userId },
        (tx) => tx`select * from public.create_datasource_api_key(${s.datasourceId}, 'x')`,
      ),
    );
    assert.equal(state, "42501");
  }
  const anon = await sqlState(
    asRole(
      db.sql,
      { role: "anon" },
      (tx) => tx`select * from public.create_datasource_api_key(${s.datasourceId}, 'x')`,
    ),
  );
  assert.equal(anon, "42501");
});

Deno.test("an owner of one workspace cannot create or revoke keys in another", async () => {
  await using db = await createTestDatabase();
  const a = await seedWorkspace(db.sql);
  const b = await seedWorkspace(db.sql);
  const asOwnerA = { role: "authenticated", userId: a.owner } as const;
  assert.equal(
    await sqlState(
      asRole(db.sql, asOwnerA, (tx) => tx`select * from public.create_datasource_api_key(${b.datasourceId}, 'x')`),
    ),
    "42501",
  );
  assert.equal(
    await sqlState(asRole(db.sql, asOwnerA, (tx) => tx`select public.revoke_datasource_api_key(${b.keyId})`)),
    "P0002",
  );
  const [row] = await db.sql`select revoked_at from public.datasource_api_keys where id = ${b.keyId}`;
  assert.equal(row!.revoked_at, null);
});

Deno.test("invalid scopes, names and past expiry are rejected", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const asOwner = { role: "authenticated", userId: s.owner } as const;
  const cases: [string, string[], Date | null, string][] = [
    ["admin scope", ["ingest:admin"], null, "23514"],
    ["no scope", [], null, "23514"],
    [" ", ["ingest:write"], null, "23514"],
    ["expired", ["ingest:write"], new Date(Date.now() - 1000), "22023"],
  ];
  for (const [name, scopes, expires, expected] of cases) {
    const state = await sqlState(
      asRole(
        db.sql,
        asOwner,
        (tx) => tx`select * from public.create_datasource_api_key(${s.datasourceId}, ${name}, ${scopes}, ${expires})`,
      ),
    );
    assert.equal(state, expected, name);
  }
});

Deno.test("revoking marks the key, keeps the first revocation time, and ingest_resolve_key reports it", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const asEditor = { role: "authenticated", userId: s.editor } as const;
  const [first] = await asRole(db.sql, asEditor, (tx) => tx`select public.revoke_datasource_api_key(${s.keyId}) as at`);
  const [second] = await asRole(
    db.sql,
    asEditor,
    (tx) => tx`select public.revoke_datasource_api_key(${s.keyId}) as at`,
  );
  assert.ok(first!.at instanceof Date);
  assert.equal(second!.at.getTime(), first!.at.getTime());
  const [resolved] = await db.sql`select public.ingest_resolve_key(${await sha256Hex(s.apiKey)}) as r`;
  assert.equal(resolved!.r.revoked, true);
  assert.equal(
    await sqlState(
      db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json({ temperature: 1 })})`,
    ),
    "PT401",
  );
});

Deno.test("ingest_resolve_key returns the key, datasource and widgets in one call; null for an unknown hash", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  const [resolved] = await db.sql`select public.ingest_resolve_key(${await sha256Hex(s.apiKey)}) as r`;
  const r = resolved!.r;
  assert.equal(r.key_id, s.keyId);
  assert.equal(r.datasource_id, s.datasourceId);
  assert.equal(r.enabled, true);
  assert.equal(r.revoked, false);
  assert.deepEqual(r.scopes, ["ingest:write"]);
  assert.deepEqual(r.widgets.map((w: { data_key: string }) => w.data_key), [
    "motor_stats",
    "production_output",
    "temperature",
  ]);
  const [unknown] = await db.sql`select public.ingest_resolve_key(${"0".repeat(64)}) as r`;
  assert.equal(unknown!.r, null);
});

Deno.test("an expired key cannot write", async () => {
  await using db = await createTestDatabase();
  const s = await seedWorkspace(db.sql);
  await db.sql`update public.datasource_api_keys set expires_at = now() - interval '1 second' where id = ${s.keyId}`;
  assert.equal(
    await sqlState(
      db.sql`select public.ingest_write(${s.datasourceId}, ${s.keyId}, ${db.sql.json({ temperature: 1 })})`,
    ),
    "PT401",
  );
});
