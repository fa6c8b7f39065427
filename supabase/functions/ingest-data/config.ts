/**
 * The function's configuration, read once from the environment into a typed
 * object; everything else receives it as a parameter.
 *
 * @module
 */

/** Where the function stores values. */
export type StoreConfig =
  | { kind: "postgres"; databaseUrl: string; poolSize: number; statementTimeoutMs: number; writeConcurrency: number }
  | { kind: "supabase"; supabaseUrl: string; serviceRoleKey: string };

/** Every setting of the function. */
export interface Config {
  store: StoreConfig;
  /** Largest accepted request body, in bytes (`INGEST_MAX_BODY_BYTES`, default 1 MiB). */
  maxBodyBytes: number;
  /** How long a resolved key (and its widgets) is cached (`INGEST_KEY_CACHE_TTL_MS`, default 30 s). */
  keyCacheTtlMs: number;
  /** How long an unknown key is remembered as unknown (`INGEST_NEGATIVE_CACHE_TTL_MS`, default 5 s). */
  negativeCacheTtlMs: number;
  /** `Access-Control-Allow-Origin` (`INGEST_CORS_ORIGIN`, default `*`). */
  corsOrigin: string;
}

/** A missing or malformed setting. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(`Cannot load config: ${message}`);
    this.name = "ConfigError";
  }
}

/** Reads the configuration from environment variables; throws a ConfigError naming the bad one. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  return {
    store: loadStoreConfig(env),
    maxBodyBytes: positiveInteger(env, "INGEST_MAX_BODY_BYTES", 1024 * 1024),
    keyCacheTtlMs: positiveInteger(env, "INGEST_KEY_CACHE_TTL_MS", 30_000, { allowZero: true }),
    negativeCacheTtlMs: positiveInteger(env, "INGEST_NEGATIVE_CACHE_TTL_MS", 5_000, { allowZero: true }),
    corsOrigin: env.INGEST_CORS_ORIGIN?.trim() || "*",
  };
}

function loadStoreConfig(env: Record<string, string | undefined>): StoreConfig {
  const kind = env.INGEST_STORE?.trim() || "postgres";
  if (kind === "supabase") {
    const supabaseUrl = env.SUPABASE_URL?.trim();
    const serviceRoleKey = (env.SUPABASE_SERVICE_ROLE_KEY ?? env.SUPABASE_SECRET_KEY)?.trim();
    if (!supabaseUrl) throw new ConfigError("INGEST_STORE=supabase needs SUPABASE_URL");
    if (!serviceRoleKey) {
      throw new ConfigError("INGEST_STORE=supabase needs SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_SECRET_KEY)");
    }
    return { kind, supabaseUrl, serviceRoleKey };
  }
  if (kind !== "postgres") throw new ConfigError(`INGEST_STORE must be "postgres" or "supabase", got "${kind}"`);
  const databaseUrl = (env.SUPABASE_DB_URL || env.DATABASE_URL)?.trim();
  if (!databaseUrl) {
    throw new ConfigError("set SUPABASE_DB_URL or DATABASE_URL (or INGEST_STORE=supabase with SUPABASE_URL)");
  }
  return {
    kind,
    databaseUrl,
    poolSize: positiveInteger(env, "INGEST_DB_POOL_SIZE", 10),
    statementTimeoutMs: positiveInteger(env, "INGEST_DB_TIMEOUT_MS", 5_000),
    writeConcurrency: positiveInteger(env, "INGEST_WRITE_CONCURRENCY", 2),
  };
}

function positiveInteger(
  env: Record<string, string | undefined>,
  name: string,
  fallback: number,
  options: { allowZero?: boolean } = {},
): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < (options.allowZero ? 0 : 1)) {
    throw new ConfigError(`${name} must be a ${options.allowZero ? "non-negative" : "positive"} integer, got "${raw}"`);
  }
  return value;
}
