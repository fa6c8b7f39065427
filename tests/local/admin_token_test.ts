/** `deno task admin token <user-id>`: a token for a user of auth.users, signed with SUPABASE_JWT_SECRET. */
import assert from "node:assert/strict";
import { verifyToken } from "../../local/jwt.ts";

const SECRET = crypto.randomUUID() + crypto.randomUUID();
import { createTestDatabase } from "../support/database.ts";
import { createUsers } from "../support/seed.ts";

async function admin(databaseUrl: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "local/admin.ts", ...args],
    cwd: new URL("../../", import.meta.url),
    env: { DATABASE_URL: databaseUrl, SUPABASE_JWT_SECRET: SECRET, NO_COLOR: "1" },
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

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
