/** readApiKey and hashApiKey. */
import assert from "node:assert/strict";
import { hashApiKey, readApiKey } from "../../supabase/functions/ingest-data/api_key.ts";
import { HttpError } from "../../supabase/functions/ingest-data/http_error.ts";

const KEY = "tw_" + "0123456789abcdef".repeat(4);

Deno.test("reads the key from X-API-Key, or from Authorization: Bearer (any case, trimmed)", () => {
  assert.equal(readApiKey(new Headers({ "X-API-Key": ` ${KEY} ` })), KEY);
  assert.equal(readApiKey(new Headers({ Authorization: `Bearer ${KEY}` })), KEY);
  assert.equal(readApiKey(new Headers({ Authorization: `bearer  ${KEY}` })), KEY);
});

Deno.test("rejects a missing key and anything that is not tw_ + 64 hex digits", () => {
  const status = (headers: Record<string, string>) => {
    try {
      readApiKey(new Headers(headers));
      return "accepted";
    } catch (e) {
      return `${(e as HttpError).status} ${(e as HttpError).code}`;
    }
  };
  assert.equal(status({}), "401 missing_api_key");
  assert.equal(status({ Authorization: "Bearer" }), "401 missing_api_key");
  assert.equal(status({ Authorization: "Token abc" }), "401 unsupported_auth_scheme");
  assert.equal(status({ Authorization: `Bearer ${KEY} x` }), "401 invalid_api_key");
  assert.equal(status({ "X-API-Key": KEY.toUpperCase() }), "401 invalid_api_key");
  assert.equal(status({ "X-API-Key": KEY + "0" }), "401 invalid_api_key");
  assert.equal(status({ "X-API-Key": "sk_live_123" }), "401 invalid_api_key");
});

Deno.test("Authorization other than Bearer says how to send the key, and never echoes credentials", () => {
  const message = (authorization: string) => {
    try {
      readApiKey(new Headers({ Authorization: authorization }));
      return "accepted";
    } catch (e) {
      assert.equal((e as HttpError).code, "unsupported_auth_scheme");
      assert.equal((e as HttpError).status, 401);
      return (e as HttpError).message;
    }
  };
  // What `curl -u user:KEY` and Node-RED's basic authentication send.
  const basic = message(`Basic ${btoa(`user:${KEY}`)}`);
  assert.match(basic, /^Authorization: Basic is not supported: send the API key as `X-API-Key: <key>`/);
  assert.match(basic, /instead of -u/);
  assert.match(basic, /Node-RED/);
  assert.match(message(KEY), /^Authorization needs the Bearer scheme: send the API key as/);
  assert.match(message("sekrit-password"), /^Authorization needs the Bearer scheme/);
  assert.match(message(`Token ${KEY}`), /^Authorization: Token is not supported: send the API key as/);
  for (const authorization of [`Basic ${btoa(`user:${KEY}`)}`, KEY, "sekrit-password", `Token ${KEY}`]) {
    const said = message(authorization);
    assert.ok(!said.includes(KEY) && !said.includes("sekrit") && !said.includes(btoa(`user:${KEY}`)), said);
  }
  // X-API-Key wins: a browser's Supabase session in Authorization does not matter.
  assert.equal(readApiKey(new Headers({ "X-API-Key": KEY, Authorization: "Basic dXNlcjpwYXNz" })), KEY);
});

Deno.test("hashApiKey is the hex SHA-256 the database computes", async () => {
  // sha256("tw_" + "0123456789abcdef" x 4), as `encode(sha256(...), 'hex')` gives it.
  const expected = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(KEY))),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  assert.equal(hashApiKey(KEY), expected);
  assert.match(hashApiKey(KEY), /^[0-9a-f]{64}$/);
});
