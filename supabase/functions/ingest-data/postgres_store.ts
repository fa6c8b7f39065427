/**
 * The store on postgres.js, talking SQL to the database directly (or through
 * Supabase's transaction pooler: `prepare: false`).
 *
 * Writes are group-committed: while `poolSize` batches are in flight, new
 * requests wait in a queue, and the next free connection takes up to
 * `maxBatch` of them in one `ingest_write_batch` call and one commit. Each
 * request is still all-or-nothing and answered only after its batch
 * committed. At low load a request goes alone, at once. Bounding in-flight
 * queries to the pool size also keeps them from piling up in postgres.js's
 * own queue, which slows down as it grows.
 *
 * @module
 */
import postgres from "postgres";
import {
  failureOfSqlState,
  type ResolvedKey,
  type Store,
  StoreError,
  type WriteRequest,
  type WriteResult,
} from "./store.ts";

/** Options of {@linkcode createPostgresStore}. */
export interface PostgresStoreOptions {
  /** Connections in the pool. */
  poolSize: number;
  /** Server-side statement timeout; a timed-out write is rolled back and answered 503. */
  statementTimeoutMs: number;
  /** How long to wait for a connection before answering 503. */
  connectTimeoutS?: number;
  /** Most requests in one group commit (default 64). */
  maxBatch?: number;
}

interface PendingWrite {
  request: WriteRequest;
  resolve: (result: WriteResult) => void;
  reject: (error: StoreError) => void;
}

type BatchItem = { ok: true; result: WriteResult } | { ok: false; code: string; message: string };

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

  const maxBatch = options.maxBatch ?? 64;
  const queue: PendingWrite[] = [];
  let inFlight = 0;

  function pump(): void {
    while (queue.length > 0 && inFlight < options.poolSize) {
      inFlight++;
      writeBatch(queue.splice(0, maxBatch)).finally(() => {
        inFlight--;
        pump();
      });
    }
  }

  async function writeBatch(batch: PendingWrite[]): Promise<void> {
    let results: BatchItem[];
    try {
      const requests = batch.map(({ request }) => ({
        datasource_id: request.datasourceId,
        key_id: request.keyId,
        values: request.values,
        observed_at: request.observedAt ?? null,
      }));
      const [row] = await sql`select public.ingest_write_batch(${sql.json(requests as postgres.JSONValue)}) as r`;
      results = row!.r as BatchItem[];
    } catch (error) {
      const failure = toStoreError(error);
      for (const pending of batch) pending.reject(failure);
      return;
    }
    batch.forEach((pending, i) => {
      const item = results[i];
      if (item?.ok) pending.resolve(item.result);
      else pending.reject(toStoreError({ name: "PostgresError", code: item?.code, message: item?.message }));
    });
  }

  return {
    async resolveKey(keyHash) {
      try {
        const [row] = await sql`select public.ingest_resolve_key(${keyHash}) as r`;
        return (row?.r ?? null) as ResolvedKey | null;
      } catch (error) {
        throw toStoreError(error);
      }
    },
    write(request) {
      return new Promise<WriteResult>((resolve, reject) => {
        queue.push({ request, resolve, reject });
        pump();
      });
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
