/**
 * Chooses the store adapter the configuration names.
 *
 * @module
 */
import { withBroadcastFlush } from "./broadcast_flusher.ts";
import type { StoreConfig } from "./config.ts";
import { createPostgresStore } from "./postgres_store.ts";
import type { Store } from "./store.ts";
import { createSupabaseStore } from "./supabase_store.ts";

/** The postgres or supabase store, as configured, flushing the broadcasts its writes left pending. */
export function createStore(config: StoreConfig): Store {
  return withBroadcastFlush(createAdapter(config));
}

function createAdapter(config: StoreConfig): Store {
  return config.kind === "supabase"
    ? createSupabaseStore(config.supabaseUrl, { serviceRoleKey: config.serviceRoleKey, limits: config.limits })
    : createPostgresStore(config.databaseUrl, {
      poolSize: config.poolSize,
      statementTimeoutMs: config.statementTimeoutMs,
      writeConcurrency: config.writeConcurrency,
      maxBatchBytes: config.maxBatchBytes,
      limits: config.limits,
    });
}
