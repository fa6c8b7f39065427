/**
 * Reading the API key from a request and hashing it for lookup.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { HttpError } from "./http_error.ts";

const KEY_FORMAT = /^tw_[0-9a-f]{64}$/;
const CHALLENGE = { "WWW-Authenticate": 'Bearer realm="ingest-data", charset="UTF-8"' };

/**
 * Returns the key from `X-API-Key`, or else from `Authorization: Bearer`.
 * X-API-Key wins so that a browser client may send its Supabase JWT alongside.
 * Throws a 401 when there is no key or it cannot be a Twinnoverse key.
 */
export function readApiKey(headers: Headers): string {
  let key = headers.get("x-api-key")?.trim();
  if (!key) {
    const authorization = headers.get("authorization")?.trim();
    const match = authorization?.match(/^Bearer\s+(\S+)$/i);
    key = match?.[1];
  }
  if (!key) {
    throw new HttpError(
      401,
      "missing_api_key",
      "Missing API key: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`",
      { headers: CHALLENGE },
    );
  }
  if (!KEY_FORMAT.test(key)) throw invalidApiKey();
  return key;
}

/** The 401 for a key that is malformed or unknown. */
export function invalidApiKey(): HttpError {
  return new HttpError(401, "invalid_api_key", "Invalid API key: copy it again from the datasource card", {
    headers: CHALLENGE,
  });
}

/** A 401 with the Bearer challenge, for a known key that no longer works. */
export function unauthorized(code: string, message: string): HttpError {
  return new HttpError(401, code, message, { headers: CHALLENGE });
}

/**
 * SHA-256 of the key as 64 lowercase hex digits: what the database stores.
 * node:crypto hashes synchronously; crypto.subtle's promise costs ~25x more here.
 */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}
