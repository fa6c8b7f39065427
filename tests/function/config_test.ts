/** loadConfig: defaults, both stores, and clear errors. */
import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../../supabase/functions/ingest-data/config.ts";

/** The limits' defaults every write passes to the database: per key as the in-memory buckets, no workspace limit. */
const DEFAULT_LIMITS = {
  requests_per_second: 100,
  requests_burst: 200,
  readings_per_second: 1000,
  readings_burst: 20000,
  max_readings: 10000,
  workspace_readings_per_second: 0,
  workspace_readings_burst: 0,
  workspace_readings_per_day: 0,
  workspace_readings_per_month: 0,
  realtime_messages_per_second: 100,
  realtime_max_payload_bytes: 200_000,
};

Deno.test("defaults: postgres store from SUPABASE_DB_URL (preferred) or DATABASE_URL, 1 MiB body, 30 s key cache", () => {
  const config = loadConfig({ SUPABASE_DB_URL: "postgres://a", DATABASE_URL: "postgres://b" });
  assert.deepEqual(config.store, {
    kind: "postgres",
    databaseUrl: "postgres://a",
    poolSize: 10,
    statementTimeoutMs: 5000,
    writeConcurrency: 2,
    maxBatchBytes: 1_100_000,
    limits: DEFAULT_LIMITS,
  });
  assert.equal(config.maxBodyBytes, 1048576);
  assert.equal(config.keyCacheTtlMs, 30000);
  assert.equal(loadConfig({ DATABASE_URL: "postgres://b" }).store.kind, "postgres");
});

Deno.test("INGEST_DATABASE_URL (a custom secret, e.g. the pooler) wins over the injected SUPABASE_DB_URL", () => {
  const env = { INGEST_DATABASE_URL: " postgres://pooler:6543 ", SUPABASE_DB_URL: "postgres://a", DATABASE_URL: "b" };
  assert.equal((loadConfig(env).store as { databaseUrl: string }).databaseUrl, "postgres://pooler:6543");
  // Empty or blank, it is not set.
  const blank = { INGEST_DATABASE_URL: " ", SUPABASE_DB_URL: "postgres://a" };
  assert.equal((loadConfig(blank).store as { databaseUrl: string }).databaseUrl, "postgres://a");
  assert.equal(
    (loadConfig({ INGEST_DATABASE_URL: "postgres://c" }).store as { databaseUrl: string }).databaseUrl,
    "postgres://c",
  );
});

Deno.test("INGEST_STORE=supabase takes SUPABASE_URL and the service role or secret key", () => {
  const config = loadConfig({
    INGEST_STORE: "supabase",
    SUPABASE_URL: "https://x.supabase.co",
    SUPABASE_SECRET_KEY: "k",
  });
  assert.deepEqual(config.store, {
    kind: "supabase",
    supabaseUrl: "https://x.supabase.co",
    serviceRoleKey: "k",
    limits: DEFAULT_LIMITS,
  });
});

Deno.test("a missing or malformed setting is a ConfigError naming it", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{}, /INGEST_DATABASE_URL, SUPABASE_DB_URL or DATABASE_URL/],
    [{ INGEST_STORE: "mysql", DATABASE_URL: "x" }, /INGEST_STORE must be "postgres" or "supabase", got "mysql"/],
    [{ INGEST_STORE: "supabase" }, /needs SUPABASE_URL/],
    [{ INGEST_STORE: "supabase", SUPABASE_URL: "https://x" }, /needs SUPABASE_SERVICE_ROLE_KEY/],
    [
      { DATABASE_URL: "x", INGEST_MAX_BODY_BYTES: "1MB" },
      /INGEST_MAX_BODY_BYTES must be a positive integer, got "1MB"/,
    ],
    [{ DATABASE_URL: "x", INGEST_DB_POOL_SIZE: "0" }, /INGEST_DB_POOL_SIZE must be a positive integer/],
    [{ DATABASE_URL: "x", INGEST_KEY_CACHE_TTL_MS: "-1" }, /INGEST_KEY_CACHE_TTL_MS must be a non-negative integer/],
  ];
  for (const [env, message] of cases) {
    assert.throws(
      () => loadConfig(env),
      (e: unknown) => e instanceof ConfigError && message.test((e as Error).message),
    );
  }
});

Deno.test("payload limits and the rate limit have defaults and can be set", () => {
  const defaults = loadConfig({ DATABASE_URL: "x" });
  assert.deepEqual(defaults.limits, { maxDataKeys: 100, maxArrayLength: 10000, maxStringLength: 4096, maxDepth: 16 });
  assert.deepEqual(defaults.rateLimit, { perSecond: 100, burst: 200 });
  const set = loadConfig({
    DATABASE_URL: "x",
    INGEST_MAX_DATA_KEYS: "5",
    INGEST_RATE_LIMIT_PER_SECOND: "0",
    INGEST_RATE_LIMIT_BURST: "9",
  });
  assert.equal(set.limits.maxDataKeys, 5);
  assert.deepEqual(set.rateLimit, { perSecond: 0, burst: 9 });
  assert.throws(
    () => loadConfig({ DATABASE_URL: "x", INGEST_MAX_DEPTH: "deep" }),
    /INGEST_MAX_DEPTH must be a positive integer/,
  );
});

Deno.test("workspace limits' defaults come from INGEST_WORKSPACE_* and go to the database with the key's and Realtime's", () => {
  const config = loadConfig({
    DATABASE_URL: "x",
    INGEST_RATE_LIMIT_PER_SECOND: "7",
    INGEST_WORKSPACE_READINGS_PER_SECOND: "50",
    INGEST_WORKSPACE_READINGS_BURST: "60",
    INGEST_WORKSPACE_READINGS_PER_DAY: "1000",
    INGEST_WORKSPACE_READINGS_PER_MONTH: "20000",
    INGEST_REALTIME_MAX_MESSAGES_PER_SECOND: "0",
    INGEST_REALTIME_MAX_PAYLOAD_BYTES: "3000000",
  });
  assert.deepEqual(config.store.limits, {
    ...DEFAULT_LIMITS,
    requests_per_second: 7,
    workspace_readings_per_second: 50,
    workspace_readings_burst: 60,
    workspace_readings_per_day: 1000,
    workspace_readings_per_month: 20000,
    realtime_messages_per_second: 0,
    realtime_max_payload_bytes: 3_000_000,
  });
  assert.throws(
    () => loadConfig({ DATABASE_URL: "x", INGEST_REALTIME_MAX_PAYLOAD_BYTES: "0" }),
    /INGEST_REALTIME_MAX_PAYLOAD_BYTES must be a positive integer/,
  );
  assert.throws(
    () => loadConfig({ DATABASE_URL: "x", INGEST_WORKSPACE_READINGS_PER_DAY: "-1" }),
    /INGEST_WORKSPACE_READINGS_PER_DAY must be a non-negative integer/,
  );
});
