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
    if (authorization && !/^Bearer(\s|$)/i.test(authorization)) throw unsupportedScheme(authorization);
    key = authorization?.slice(6).trim();
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

/**
 * The 401 for an Authorization header that is not `Bearer <key>`: Basic (what
 * `curl -u` and Node-RED's Basic authentication send), or a bare key. It names
 * the scheme but never echoes the credentials.
 */
function unsupportedScheme(authorization: string): HttpError {
  const how = "send the API key as `X-API-Key: <key>` or `Authorization: Bearer <key>`";
  // A scheme is a word followed by credentials; a lone token may be a secret, so it is never echoed.
  const scheme = authorization.match(/^([A-Za-z][\w-]{0,30})\s+\S/)?.[1];
  let message: string;
  if (scheme?.toLowerCase() === "basic") {
    message = `Authorization: Basic is not supported: ${how} (with curl, use --header instead of -u; in Node-RED, ` +
      "add the header to the http request node instead of choosing basic authentication)";
  } else if (!scheme) {
    message = `Authorization needs the Bearer scheme: ${how}`;
  } else {
    message = `Authorization: ${scheme} is not supported: ${how}`;
  }
  return new HttpError(401, "unsupported_auth_scheme", message, { headers: CHALLENGE });
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
