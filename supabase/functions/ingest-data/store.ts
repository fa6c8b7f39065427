/**
 * The store interface the handler talks to, implemented by the postgres and
 * supabase adapters; both call the SQL functions `ingest_resolve_key`, the
 * write functions (with the limits' defaults) and `ingest_usage`.
 *
 * @module
 */

/** A widget linked to the datasource, as `ingest_resolve_key` returns it. */
export interface Widget {
  id: string;
  name: string;
  widget_type: "SingleData" | "DoubleData" | "BarChart" | "LineChart";
  data_key: string;
  settings: Record<string, unknown>;
}

/** What `ingest_resolve_key` returns for a known key. */
export interface ResolvedKey {
  key_id: string;
  scopes: string[];
  expires_at: string | null;
  revoked: boolean;
  /** The key's own limits; null fields fall back to the function's defaults. */
  rate_limit?: { per_second: number | null; burst: number | null };
  datasource_id: string;
  datasource_name: string;
  enabled: boolean;
  config_version: number | string;
  widgets: Widget[];
}

/** One reading of a gateway request: values and their own time. */
export interface Reading {
  /** ISO 8601 UTC as `toISOString()` writes it; the time of receipt when absent. */
  observedAt?: string;
  values: Record<string, unknown>;
}

/** One request's values, already validated. */
export interface WriteRequest {
  datasourceId: string;
  keyId: string;
  /** The values of a single payload (ignored when `readings` is set). */
  values: Record<string, unknown>;
  /** ISO 8601; the time of receipt when absent. */
  observedAt?: string;
  /** Readings with their own times (a gateway's batch). */
  readings?: Reading[];
  /** The request's Idempotency-Key and the SHA-256 (hex) of what it asked for. */
  idempotency?: { key: string; hash: string };
}

/**
 * What `ingest_write` (or `ingest_write_readings`) stored. Times are in the
 * API's form (UTC, `Z`, milliseconds) as the SQL functions write them: after
 * the commit there is nothing left to parse.
 */
export interface WriteResult {
  stored: string[];
  superseded: string[];
  observed_at: string;
  received_at: string;
  /** Readings stored (requests with `readings`). */
  readings?: number;
  /** DataKeys whose latest value this request moved (requests with `readings`). */
  latest?: string[];
  /** True when this is the recorded answer of an earlier request with the same Idempotency-Key. */
  replayed?: boolean;
}

/** One result of `ingest_write_readings`: stored, replayed, or refused with a PTxxx code. */
export type ReadingsItem =
  | { readings: number; latest: string[]; observed_at: string; superseded: string[]; received_at: string }
  | { replay: { readings: number; latest: string[]; observed_at: string; superseded: string[]; received_at: string } }
  | { code: string };

/**
 * The limit that refused a request, as the database's `ingest_take_limits` describes it (PT429):
 * which one, its size, what is left, and when to retry.
 */
export interface LimitRefusal {
  code: "rate_limited" | "quota_exceeded";
  limit: "key_requests" | "key_readings" | "workspace_readings" | "workspace_day" | "workspace_month";
  /** The bucket's burst, or the quota. */
  limit_value: number;
  /** A bucket's rate. */
  per_second?: number;
  remaining: number;
  /** Seconds until the bucket is full again, or the quota resets. */
  reset_s: number;
  retry_after_s: number;
}

/** The messages the SQL functions raise with each code, for the requests a batch refuses. */
export const REFUSALS: Record<string, string> = {
  PT400:
    "Values must be a non-empty JSON object of the datasource's DataKeys, observed at a time the database can store",
  PT401: "API key is not valid",
  PT403: "API key lacks the ingest:write scope, or the datasource is disabled",
  PT409: "A request with this Idempotency-Key is still in flight",
  PT422: "This Idempotency-Key was used for another request",
};

/**
 * The error for a write whose answer cannot be read: the database may have
 * committed it, so it is never called a refusal (503: a retry with the same
 * Idempotency-Key gets the recorded answer).
 */
export function unreadableAnswer(): StoreError {
  return new StoreError("unavailable", "the answer to a write could not be read: it may have been stored");
}

/** The StoreError of a request a write function refused with `code` (unreadable when not a PTxxx code it raises). */
export function refusal(code: unknown, limit?: unknown): StoreError {
  if (code === "PT429") return limitError(limit);
  const kind = typeof code === "string" ? failureOfSqlState(code) : null;
  if (!kind || !(code as string).startsWith("PT")) return unreadableAnswer();
  return new StoreError(kind, REFUSALS[code as string] ?? `database error ${code}`);
}

/** The StoreError of a request a limit refused (PT429 with the limit's description). */
export function limitError(limit: unknown): StoreError {
  const refusal = limit as LimitRefusal | undefined;
  if (typeof refusal?.limit !== "string" || typeof refusal.retry_after_s !== "number") return unreadableAnswer();
  return new StoreError("limited", `limit ${refusal.limit} refused the request`, refusal);
}

/** The WriteResult of one `ingest_write_readings` result, or the StoreError refusing it. */
export function readingsOutcome(request: WriteRequest, item: ReadingsItem | undefined): WriteResult | StoreError {
  if (item && "code" in item) return refusal(item.code, (item as { limit?: unknown }).limit);
  const replayed = item !== undefined && "replay" in item;
  const stored = item && "replay" in item ? item.replay : item;
  if (typeof stored?.observed_at !== "string" || typeof stored.received_at !== "string") return unreadableAnswer();
  return {
    stored: Object.keys(request.readings?.[0]?.values ?? request.values).sort(),
    superseded: stored.superseded,
    observed_at: stored.observed_at,
    received_at: stored.received_at,
    readings: stored.readings,
    latest: stored.latest,
    ...(replayed ? { replayed } : {}),
  };
}

/** The request as `ingest_write_readings` reads it: times in epoch milliseconds. */
export function readingsPayload(request: WriteRequest): unknown {
  return {
    datasource_id: request.datasourceId,
    key_id: request.keyId,
    readings: (request.readings ?? [{ observedAt: request.observedAt, values: request.values }]).map((r) => ({
      t: r.observedAt === undefined ? null : Date.parse(r.observedAt),
      v: r.values,
    })),
    ...(request.idempotency
      ? { idempotency_key: request.idempotency.key, request_hash: request.idempotency.hash }
      : {}),
  };
}

/** The data access the handler needs. */
export interface Store {
  /** The key with this SHA-256 (hex), or null when there is none. */
  resolveKey(keyHash: string): Promise<ResolvedKey | null>;
  /** Stores one request's values in one transaction, within the limits the database enforces. */
  write(request: WriteRequest): Promise<WriteResult>;
  /** What the key and its workspace may still send now (`ingest_usage`). */
  usage(keyId: string): Promise<unknown>;
  /** Sends the pending broadcasts that are due; seconds until the next is due, null when none is pending. */
  flushBroadcasts(): Promise<number | null>;
  /** Closes connections. */
  close(): Promise<void>;
}

/** Why a store call failed, as the handler needs to know it. */
export type StoreFailure =
  | "unauthorized"
  | "forbidden"
  | "invalid"
  | "in_flight"
  | "reused"
  | "limited"
  | "unavailable"
  | "failed";

/** A store failure with its kind; `message` is safe to show (no SQL, no key material). */
export class StoreError extends Error {
  readonly kind: StoreFailure;
  /** The limit that refused the request (kind `limited`). */
  readonly limit?: LimitRefusal;
  constructor(kind: StoreFailure, message: string, limit?: LimitRefusal) {
    super(message);
    this.name = "StoreError";
    this.kind = kind;
    if (limit) this.limit = limit;
  }
}

/** Maps the PTxxx codes `ingest_write` raises to a failure kind, or null for other codes. */
export function failureOfSqlState(code: string | undefined): StoreFailure | null {
  switch (code) {
    case "PT400":
      return "invalid";
    case "PT401":
      return "unauthorized";
    case "PT403":
      return "forbidden";
    case "PT409":
      return "in_flight";
    case "PT422":
      return "reused";
  }
  if (!code) return null;
  // Data exceptions: a value the database cannot read or store (a time out of range, a malformed id).
  if (code.startsWith("22")) return "invalid";
  // Connection exceptions, shutdown, too many connections, statement timeout, read-only standby.
  if (code.startsWith("08") || code.startsWith("57P") || code === "53300" || code === "57014" || code === "25006") {
    return "unavailable";
  }
  return null;
}
