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
  assert.equal(status({ Authorization: "Token abc" }), "401 missing_api_key");
  assert.equal(status({ "X-API-Key": KEY.toUpperCase() }), "401 invalid_api_key");
  assert.equal(status({ "X-API-Key": KEY + "0" }), "401 invalid_api_key");
  assert.equal(status({ "X-API-Key": "sk_live_123" }), "401 invalid_api_key");
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
