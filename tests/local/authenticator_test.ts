/**
 * local/authenticator.ts: the stand-ins' client pool can become anon,
 * authenticated and service_role and nothing else, on PostgreSQL (a login
 * as `authenticator`) and on PGlite (one session switched to it per
 * transaction, and back).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { AUTHENTICATOR, type Authenticator, becomeRole, connectAuthenticator } from "../../local/authenticator.ts";
import { startEmbeddedPostgres } from "../../local/embedded_postgres.ts";
import { applyPlatformFixture } from "../../local/migrate.ts";
import { createTestDatabase } from "../support/database.ts";
import { sqlState } from "../support/seed.ts";

/** Who a transaction of `authenticator` is after becoming `role`, or the SQLSTATE that refused it. */
async function become(authenticator: Authenticator, role: string): Promise<string> {
  try {
    return await authenticator.begin(async (tx) => {
      await becomeRole(tx, role);
      const [row] = await tx`select session_user::text || ' as ' || current_user::text as who`;
      return row!.who as string;
    });
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

async function assertOnlyApiRoles(authenticator: Authenticator) {
  for (const role of ["anon", "authenticated", "service_role"]) {
    assert.equal(await become(authenticator, role), `authenticator as ${role}`);
  }
  assert.equal(await become(authenticator, "postgres"), "42501", "permission denied to set role");
  assert.equal(await become(authenticator, "no_such_role"), "22023", "role does not exist");
}

Deno.test("authenticator (PostgreSQL login): becomes the three API roles, never postgres", async () => {
  await using db = await createTestDatabase();
  const authenticator = connectAuthenticator(db.url, { kind: "login", user: AUTHENTICATOR }, { max: 1 });
  try {
    await assertOnlyApiRoles(authenticator);
    // As itself it holds no rights (noinherit): not even the API roles' grants.
    assert.equal(
      await sqlState(authenticator.begin((tx) => tx`select count(*) from realtime.messages`)),
      "42501",
    );
  } finally {
    await authenticator.end();
  }
});

Deno.test("authenticator (PGlite session authorization): the same, and the session is the superuser again after", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twinnoverse-pglite-" });
  const embedded = await startEmbeddedPostgres(`${dir}/pglite`);
  const sql = postgres(embedded.url, { max: 1, onnotice: () => {} });
  const authenticator = connectAuthenticator(embedded.url, { kind: "session_authorization", role: AUTHENTICATOR });
  try {
    await applyPlatformFixture(sql);
    await assertOnlyApiRoles(authenticator);
    // A transaction that fails after writing (the Realtime probe's way out) leaves nothing and no switched session.
    const failed = authenticator.begin(async (tx) => {
      await becomeRole(tx, "service_role");
      await tx`insert into realtime.messages (topic, extension) values ('probe', 'broadcast')`;
      throw new Error("rolled back");
    });
    await assert.rejects(failed, /rolled back/);
    const [after] = await sql`select session_user::text as session, current_user::text as current,
      (select count(*) from realtime.messages)::int as messages`;
    assert.deepEqual({ ...after }, { session: "postgres", current: "postgres", messages: 0 });
  } finally {
    await authenticator.end();
    await sql.end();
    await embedded.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
