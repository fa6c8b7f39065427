/**
 * What a failure answers: the HttpError a thrown value becomes (store
 * failures, the key lookup budget, the database's limits), and what the log
 * may say about an unexpected one.
 *
 * @module
 */
import { unauthorized } from "./api_key.ts";
import { HttpError } from "./http_error.ts";
import { LookupLimitedError } from "./key_resolver.ts";
import { type LimitRefusal, StoreError } from "./store.ts";

/** Seconds a client should wait before retrying when the database is unavailable. */
const RETRY_AFTER_S = "5";

/** Maps store failures to HTTP; anything unknown becomes a generic 500. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof LookupLimitedError) {
    // Not a 401: the key was not checked, and a client told "invalid" would stop instead of retrying.
    return new HttpError(
      503,
      "key_lookup_limited",
      "Service unavailable: this instance is checking too many API keys it has not seen before, so this key " +
        "could not be checked yet. Retry after Retry-After.",
      { headers: { "Retry-After": String(error.retryAfterS) } },
    );
  }
  if (error instanceof StoreError) {
    switch (error.kind) {
      case "unauthorized":
        return unauthorized("invalid_api_key", "API key is not valid: it was revoked or has expired");
      case "forbidden":
        return new HttpError(403, "forbidden", `Forbidden: ${error.message}`);
      case "invalid":
        return new HttpError(400, "invalid_payload", `Cannot parse payload: ${error.message}`);
      case "in_flight":
        return new HttpError(
          409,
          "idempotency_key_in_flight",
          "Conflict: a request with this Idempotency-Key is still being stored; retry it in a second for its answer",
          { headers: { "Retry-After": "1" } },
        );
      case "reused":
        return new HttpError(
          422,
          "idempotency_key_reused",
          "Cannot reuse Idempotency-Key: it was used for a request with another body; use a new key for a new request",
        );
      case "limited":
        return limitHttpError(error.limit!);
      case "unavailable":
        return new HttpError(
          503,
          "service_unavailable",
          "Service unavailable: the database cannot be reached. Retry later.",
          {
            headers: { "Retry-After": RETRY_AFTER_S },
          },
        );
    }
  }
  return new HttpError(500, "internal_error", "Internal error: the request was not stored. Retry later.");
}

/** What each limit is called in a 429's message. */
const LIMIT_NAMES: Record<LimitRefusal["limit"], string> = {
  key_requests: "this key's requests per second",
  key_readings: "this key's readings per second",
  workspace_readings: "the workspace's readings per second",
  workspace_day: "the workspace's readings per day (UTC)",
  workspace_month: "the workspace's readings per month (UTC)",
};

/** The 429 of a request the database's limits refused: which limit, what is left, when it resets. */
function limitHttpError(limit: LimitRefusal): HttpError {
  const name = LIMIT_NAMES[limit.limit] ?? limit.limit;
  const headers = {
    "Retry-After": String(limit.retry_after_s),
    "X-RateLimit-Limit": String(limit.limit_value),
    "X-RateLimit-Remaining": String(limit.remaining),
    "X-RateLimit-Reset": String(limit.reset_s),
  };
  if (limit.code === "quota_exceeded") {
    return new HttpError(
      429,
      "quota_exceeded",
      `Quota exceeded: ${name} (${limit.limit_value} readings) is used up; it resets in ${limit.reset_s} s. ` +
        "Nothing was stored.",
      { headers },
    );
  }
  return new HttpError(
    429,
    "rate_limited",
    `Too many requests: over ${name} (${limit.per_second} a second, bursts of ${limit.limit_value}); ` +
      `retry in ${limit.retry_after_s} s. Nothing was stored.`,
    { headers },
  );
}

/** A log-safe description of an unexpected error: its class and code, never its message or stack. */
export function describeInternal(error: unknown): string {
  if (error instanceof StoreError) return `StoreError ${error.kind}: ${error.message}`;
  const e = error as { name?: string; code?: string };
  return [e?.name ?? typeof error, e?.code].filter(Boolean).join(" ");
}
