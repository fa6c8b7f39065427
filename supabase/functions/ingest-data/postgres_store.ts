/**
 * The store on postgres.js, talking SQL to the database directly (or through
 * Supabase's transaction pooler: `prepare: false`).
 *
 * @module
 */
import postgres from "postgres";
import { failureOfSqlState, type ResolvedKey, type Store, StoreError, type WriteResult } from "./store.ts";

/** Options of {@linkcode createPostgresStore}. */
export interface PostgresStoreOptions {
  /** Connections in the pool. */
  poolSize: number;
  /** Server-side statement timeout; a timed-out write is rolled back and answered 503. */
  statementTimeoutMs: number;
  /** How long to wait for a connection before answering 503. */
  connectTimeoutS?: number;
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
]);

/** A store that calls `ingest_resolve_key` and `ingest_write` over a postgres.js pool. */
export function createPostgresStore(url: string, options: PostgresStoreOptions): Store {
  const sql = postgres(url, {
    max: options.poolSize,
    prepare: false,
    connect_timeout: options.connectTimeoutS ?? 5,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: "ingest-data", statement_timeout: options.statementTimeoutMs },
  });

  return {
    async resolveKey(keyHash) {
      try {
        const [row] = await sql`select public.ingest_resolve_key(${keyHash}) as r`;
        return (row?.r ?? null) as ResolvedKey | null;
      } catch (error) {
        throw toStoreError(error);
      }
    },
    async write(request) {
      try {
        const [row] = await sql`select public.ingest_write(
          ${request.datasourceId}, ${request.keyId}, ${sql.json(request.values as postgres.JSONValue)},
          ${request.observedAt ?? null}
        ) as r`;
        return row!.r as WriteResult;
      } catch (error) {
        throw toStoreError(error);
      }
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}

/** Classifies a postgres.js failure; the message keeps no SQL and no values. */
function toStoreError(error: unknown): StoreError {
  const e = error as { name?: string; code?: string; message?: string };
  if (e.name === "PostgresError") {
    const kind = failureOfSqlState(e.code);
    if (kind === "invalid" || kind === "unauthorized" || kind === "forbidden") {
      return new StoreError(kind, e.message ?? kind);
    }
    return new StoreError(kind ?? "failed", `database error ${e.code}`);
  }
  if (e.code && NETWORK_CODES.has(e.code)) return new StoreError("unavailable", `database unreachable (${e.code})`);
  return new StoreError("failed", `store failure (${e.name ?? "unknown"})`);
}
