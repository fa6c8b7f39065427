/**
 * The function's configuration, read once from the environment into a typed
 * object; everything else receives it as a parameter.
 *
 * @module
 */

/** Where the function stores values. */
export type StoreTarget =
  | {
    kind: "postgres";
    databaseUrl: string;
    poolSize: number;
    statementTimeoutMs: number;
    writeConcurrency: number;
    /** Most characters of JSON in one group commit (`INGEST_MAX_BATCH_BYTES`, {@linkcode DEFAULT_MAX_BATCH_BYTES}). */
    maxBatchBytes: number;
  }
  | { kind: "supabase"; supabaseUrl: string; serviceRoleKey: string };

/** Where the function stores values, and the limits its writes pass to the database as defaults. */
export type StoreConfig = StoreTarget & { limits: LimitDefaults };

/**
 * The defaults of the limits the database enforces across every instance (`p_limits` of the write
 * functions): a key's or workspace's own settings in the database win; 0 is no limit.
 */
export interface LimitDefaults {
  requests_per_second: number;
  requests_burst: number;
  readings_per_second: number;
  readings_burst: number;
  /** A request's most readings: a readings bucket never holds fewer. */
  max_readings: number;
  /** `INGEST_WORKSPACE_READINGS_PER_SECOND`, default 0 (none). */
  workspace_readings_per_second: number;
  /** `INGEST_WORKSPACE_READINGS_BURST`, default 0 (the rate, at least one full request). */
  workspace_readings_burst: number;
  /** `INGEST_WORKSPACE_READINGS_PER_DAY` (UTC day), default 0 (none). */
  workspace_readings_per_day: number;
  /** `INGEST_WORKSPACE_READINGS_PER_MONTH` (UTC month), default 0 (none). */
  workspace_readings_per_month: number;
  /**
   * `INGEST_REALTIME_MAX_MESSAGES_PER_SECOND`, default 100 (Supabase Free's quota; 0: none): the broadcasts
   * of all datasources together, shared equally by those that broadcast.
   */
  realtime_messages_per_second: number;
  /** `INGEST_REALTIME_MAX_PAYLOAD_BYTES`, default 200,000: larger values are read, not broadcast. */
  realtime_max_payload_bytes: number;
}

/**
 * Default most characters of JSON in one group commit: about one full request
 * (INGEST_MAX_BODY_BYTES' default, 1 MiB, and a little). Batching large
 * requests gains nothing (each costs its size), and a batch's time is what a
 * small request queued behind it waits (docs/performance.md).
 */
export const DEFAULT_MAX_BATCH_BYTES = 1_100_000;

/** Every setting of the function. */
export interface Config {
  store: StoreConfig;
  /** Largest accepted request body, in bytes (`INGEST_MAX_BODY_BYTES`, default 1 MiB). */
  maxBodyBytes: number;
  /** How long a resolved key (and its widgets) is cached (`INGEST_KEY_CACHE_TTL_MS`, default 30 s). */
  keyCacheTtlMs: number;
  /** How long an unknown key is remembered as unknown (`INGEST_NEGATIVE_CACHE_TTL_MS`, default 5 s). */
  negativeCacheTtlMs: number;
  /**
   * Lookups a second of keys this instance has never seen valid (`INGEST_KEY_LOOKUPS_PER_SECOND`, default 100;
   * 0 turns the budget off), at most `INGEST_KEY_LOOKUPS_BURST` (default 1,000) at once.
   */
  keyLookups: RateLimitConfig;
  /** `Access-Control-Allow-Origin` (`INGEST_CORS_ORIGIN`, default `*`). */
  corsOrigin: string;
  /** Limits on the payload's shape, each a 400 when exceeded. */
  limits: PayloadLimits;
  /** Default per-key token bucket; a key's own limits in the database win. */
  rateLimit: RateLimitConfig;
  /** Readings in one request (`INGEST_MAX_READINGS`, default 10,000). */
  maxReadings: number;
  /** Per-key bucket of readings that batches draw from, beside the requests' bucket. */
  readingsRateLimit: RateLimitConfig;
}

/** Limits on a payload; see the README for the defaults. */
export interface PayloadLimits {
  /** DataKeys in one request (`INGEST_MAX_DATA_KEYS`, default 100). */
  maxDataKeys: number;
  /** Items in a chart's labels or values array (`INGEST_MAX_ARRAY_LENGTH`, default 10,000). */
  maxArrayLength: number;
  /** Characters in a string value or label (`INGEST_MAX_STRING_LENGTH`, default 4,096). */
  maxStringLength: number;
  /** Nesting depth of the JSON body (`INGEST_MAX_DEPTH`, default 16; valid payloads need 3). */
  maxDepth: number;
}

/** A token bucket: `perSecond` tokens added each second, at most `burst` saved up. 0 disables it. */
export interface RateLimitConfig {
  /** `INGEST_RATE_LIMIT_PER_SECOND`, default 100. */
  perSecond: number;
  /** `INGEST_RATE_LIMIT_BURST`, default 200. */
  burst: number;
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
  const maxReadings = positiveInteger(env, "INGEST_MAX_READINGS", 10_000);
  const rateLimit = {
    perSecond: positiveInteger(env, "INGEST_RATE_LIMIT_PER_SECOND", 100, { allowZero: true }),
    burst: positiveInteger(env, "INGEST_RATE_LIMIT_BURST", 200),
  };
  const readingsRateLimit = {
    perSecond: positiveInteger(env, "INGEST_RATE_LIMIT_READINGS_PER_SECOND", 1_000, { allowZero: true }),
    // A full batch always fits in the bucket: it is refused for a while, never for good.
    burst: Math.max(positiveInteger(env, "INGEST_RATE_LIMIT_READINGS_BURST", 20_000), maxReadings),
  };
  const limits: LimitDefaults = {
    requests_per_second: rateLimit.perSecond,
    requests_burst: rateLimit.burst,
    readings_per_second: readingsRateLimit.perSecond,
    readings_burst: readingsRateLimit.burst,
    max_readings: maxReadings,
    workspace_readings_per_second: positiveInteger(env, "INGEST_WORKSPACE_READINGS_PER_SECOND", 0, { allowZero: true }),
    workspace_readings_burst: positiveInteger(env, "INGEST_WORKSPACE_READINGS_BURST", 0, { allowZero: true }),
    workspace_readings_per_day: positiveInteger(env, "INGEST_WORKSPACE_READINGS_PER_DAY", 0, { allowZero: true }),
    workspace_readings_per_month: positiveInteger(env, "INGEST_WORKSPACE_READINGS_PER_MONTH", 0, { allowZero: true }),
    realtime_messages_per_second: positiveInteger(env, "INGEST_REALTIME_MAX_MESSAGES_PER_SECOND", 100, {
      allowZero: true,
    }),
    realtime_max_payload_bytes: positiveInteger(env, "INGEST_REALTIME_MAX_PAYLOAD_BYTES", 200_000),
  };
  return {
    store: { ...loadStoreConfig(env), limits },
    maxBodyBytes: positiveInteger(env, "INGEST_MAX_BODY_BYTES", 1024 * 1024),
    keyCacheTtlMs: positiveInteger(env, "INGEST_KEY_CACHE_TTL_MS", 30_000, { allowZero: true }),
    negativeCacheTtlMs: positiveInteger(env, "INGEST_NEGATIVE_CACHE_TTL_MS", 5_000, { allowZero: true }),
    keyLookups: {
      perSecond: positiveInteger(env, "INGEST_KEY_LOOKUPS_PER_SECOND", 100, { allowZero: true }),
      burst: positiveInteger(env, "INGEST_KEY_LOOKUPS_BURST", 1_000),
    },
    corsOrigin: env.INGEST_CORS_ORIGIN?.trim() || "*",
    limits: {
      maxDataKeys: positiveInteger(env, "INGEST_MAX_DATA_KEYS", 100),
      maxArrayLength: positiveInteger(env, "INGEST_MAX_ARRAY_LENGTH", 10_000),
      maxStringLength: positiveInteger(env, "INGEST_MAX_STRING_LENGTH", 4_096),
      maxDepth: positiveInteger(env, "INGEST_MAX_DEPTH", 16),
    },
    rateLimit,
    maxReadings,
    readingsRateLimit,
  };
}

function loadStoreConfig(env: Record<string, string | undefined>): StoreTarget {
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
  // A custom secret wins over the injected one: Supabase always injects SUPABASE_DB_URL (the direct
  // connection) and refuses custom secrets named SUPABASE_*, so INGEST_DATABASE_URL is the only way to
  // point a deployed function at the transaction pooler. DATABASE_URL serves local runs.
  const databaseUrl = env.INGEST_DATABASE_URL?.trim() || env.SUPABASE_DB_URL?.trim() || env.DATABASE_URL?.trim();
  if (!databaseUrl) {
    throw new ConfigError(
      "set INGEST_DATABASE_URL, SUPABASE_DB_URL or DATABASE_URL (or INGEST_STORE=supabase with SUPABASE_URL)",
    );
  }
  return {
    kind,
    databaseUrl,
    poolSize: positiveInteger(env, "INGEST_DB_POOL_SIZE", 10),
    statementTimeoutMs: positiveInteger(env, "INGEST_DB_TIMEOUT_MS", 5_000),
    writeConcurrency: positiveInteger(env, "INGEST_WRITE_CONCURRENCY", 2),
    maxBatchBytes: positiveInteger(env, "INGEST_MAX_BATCH_BYTES", DEFAULT_MAX_BATCH_BYTES),
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
