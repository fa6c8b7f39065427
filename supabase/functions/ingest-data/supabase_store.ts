/**
 * The store on supabase-js: `rpc()` calls through PostgREST with the service
 * role key. Chosen with `INGEST_STORE=supabase`.
 *
 * @module
 */
import { createClient } from "@supabase/supabase-js";
import {
  failureOfSqlState,
  type ReadingsItem,
  readingsOutcome,
  readingsPayload,
  refusal,
  type ResolvedKey,
  type Store,
  StoreError,
  unreadableAnswer,
  type WriteResult,
} from "./store.ts";
import type { LimitDefaults } from "./config.ts";

/** A store that calls `ingest_resolve_key` and `ingest_write` through PostgREST. */
export function createSupabaseStore(
  url: string,
  options: { serviceRoleKey: string; limits?: LimitDefaults; fetch?: typeof fetch },
): Store {
  const limits = options.limits ?? {};
  const client = createClient(url, options.serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: options.fetch ? { fetch: options.fetch } : {},
  });

  async function call<T>(fn: string, args: Record<string, unknown>): Promise<T> {
    let response;
    try {
      response = await client.rpc(fn, args);
    } catch {
      throw new StoreError("unavailable", "database API unreachable");
    }
    const { data, error, status } = response;
    if (!error) return data as T;
    const kind = failureOfSqlState(error.code);
    if (kind && kind !== "unavailable" && kind !== "failed") throw new StoreError(kind, error.message);
    // supabase-js reports a network failure as status 0; PostgREST answers 503
    // when it cannot reach the database, 502/504 come from the gateway.
    if (kind === "unavailable" || status === 0 || status === 502 || status === 503 || status === 504) {
      throw new StoreError("unavailable", `database API unavailable (${status})`);
    }
    throw new StoreError("failed", `database API error ${error.code || status}`);
  }

  return {
    resolveKey(keyHash) {
      return call<ResolvedKey | null>("ingest_resolve_key", { p_key_hash: keyHash });
    },
    async write(request) {
      // ingest_write takes no Idempotency-Key: a single payload sent with one goes as a request of one reading.
      if (request.readings || request.idempotency) {
        const answer = await call<{ results?: ReadingsItem[] } | null>("ingest_write_readings", {
          p_requests: [readingsPayload(request)],
          p_limits: limits,
        });
        // After the commit nothing may fail: an answer of another shape is an unreadable one (503), never a 500.
        const outcome = readingsOutcome(request, Array.isArray(answer?.results) ? answer.results[0] : undefined);
        if (outcome instanceof StoreError) throw outcome;
        return outcome;
      }
      const result = await call<
        (WriteResult & { code?: undefined; limit?: undefined }) | { code: string; limit: unknown } | null
      >("ingest_write", {
        p_datasource_id: request.datasourceId,
        p_key_id: request.keyId,
        p_values: request.values,
        p_observed_at: request.observedAt ?? null,
        p_limits: limits,
      });
      if (result && "code" in result) throw refusal((result as { code: unknown }).code, result.limit);
      if (typeof result?.observed_at !== "string" || typeof result.received_at !== "string") throw unreadableAnswer();
      return result;
    },
    usage(keyId) {
      return call<unknown>("ingest_usage", { p_key_id: keyId, p_limits: limits });
    },
    flushBroadcasts() {
      return call<number | null>("ingest_flush_broadcasts", { p_limits: limits });
    },
    async close() {},
  };
}
