/**
 * Chooses the store adapter the configuration names.
 *
 * @module
 */
import type { StoreConfig } from "./config.ts";
import { createPostgresStore } from "./postgres_store.ts";
import type { Store } from "./store.ts";
import { createSupabaseStore } from "./supabase_store.ts";

/** The postgres or supabase store, as configured. */
export function createStore(config: StoreConfig): Store {
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
