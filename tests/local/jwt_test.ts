/** local/jwt.ts: tokens as the Supabase CLI mints them, refused as Supabase Realtime refuses them. */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { anonKey, DEFAULT_JWT_SECRET, mintToken, mintUserToken, TokenError, verifyToken } from "../../local/jwt.ts";

/** The anon key `supabase start` prints (its local default secret). */
const CLI_ANON_KEY =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9" +
  ".CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";

Deno.test("jwt: the anon key is the Supabase CLI's for the default secret", async () => {
  assert.equal(await anonKey(DEFAULT_JWT_SECRET), CLI_ANON_KEY);
  assert.notEqual(await anonKey("another-secret-of-at-least-thirty-two-chars"), CLI_ANON_KEY);
});

Deno.test("jwt: a user token verifies with its claims", async () => {
  const token = await mintUserToken(DEFAULT_JWT_SECRET, "6f1c1b8e-2f0a-4c57-9e83-1a2b3c4d5e6f", { expiresIn: 60 });
  const claims = await verifyToken(token, DEFAULT_JWT_SECRET);
  assert.equal(claims.role, "authenticated");
  assert.equal(claims.sub, "6f1c1b8e-2f0a-4c57-9e83-1a2b3c4d5e6f");
  assert.ok(Math.abs(claims.exp - (Date.now() / 1000 + 60)) < 5);
});

Deno.test("jwt: refusals carry Supabase Realtime's reasons", async () => {
  const refusal = async (token: string) => {
    try {
      await verifyToken(token, DEFAULT_JWT_SECRET);
    } catch (error) {
      assert.ok(error instanceof TokenError);
      return `${error.reason}: ${error.message}`;
    }
    throw new Error("accepted");
  };
  assert.match(
    await refusal(await mintToken(DEFAULT_JWT_SECRET, { role: "authenticated" }, { expiresIn: -30 })),
    /^expired: Token has expired 3\d seconds ago$/,
  );
  assert.equal(
    await refusal(await mintToken(DEFAULT_JWT_SECRET, { role: "authenticated" }, { expiresIn: null })),
    "missing_claims: Fields `role` and `exp` are required in JWT",
  );
  assert.equal(
    await refusal(await mintToken(DEFAULT_JWT_SECRET, { sub: "x" })),
    "missing_claims: Fields `role` and `exp` are required in JWT",
  );
  assert.equal(
    await refusal(await mintToken("another-secret-of-at-least-thirty-two-chars", { role: "anon" })),
    "signature: Failed to validate JWT signature",
  );
  assert.equal(await refusal("not.a.jwt"), "malformed: The token provided is not a valid JWT");
  const hs512 = await new SignJWT({ role: "anon", exp: 1983812996 }).setProtectedHeader({ alg: "HS512" })
    .sign(new TextEncoder().encode(DEFAULT_JWT_SECRET));
  assert.equal(await refusal(hs512), "malformed: The token provided is not a valid JWT", "HS256 only");
});
