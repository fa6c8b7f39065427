/**
 * The store interface the handler talks to, implemented by the postgres and
 * supabase adapters; both call the SQL functions `ingest_resolve_key` and
 * `ingest_write`.
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

/** One request's values, already validated. */
export interface WriteRequest {
  datasourceId: string;
  keyId: string;
  values: Record<string, unknown>;
  /** ISO 8601; the time of receipt when absent. */
  observedAt?: string;
}

/** What `ingest_write` stored. */
export interface WriteResult {
  stored: string[];
  superseded: string[];
  observed_at: string;
  received_at: string;
}

/** The data access the handler needs. */
export interface Store {
  /** The key with this SHA-256 (hex), or null when there is none. */
  resolveKey(keyHash: string): Promise<ResolvedKey | null>;
  /** Stores one request's values in one transaction. */
  write(request: WriteRequest): Promise<WriteResult>;
  /** Closes connections. */
  close(): Promise<void>;
}

/** Why a store call failed, as the handler needs to know it. */
export type StoreFailure = "unauthorized" | "forbidden" | "invalid" | "unavailable" | "failed";

/** A store failure with its kind; `message` is safe to show (no SQL, no key material). */
export class StoreError extends Error {
  readonly kind: StoreFailure;
  constructor(kind: StoreFailure, message: string) {
    super(message);
    this.name = "StoreError";
    this.kind = kind;
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
