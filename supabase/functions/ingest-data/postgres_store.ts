/**
 * The store on postgres.js, talking SQL to the database directly (or through
 * Supabase's transaction pooler: `prepare: false`).
 *
 * Writes are group-committed: each datasource belongs to one of
 * `writeConcurrency` lanes; while a lane's batch is in flight, its new
 * requests queue, and the next batch takes up to `maxBatch` of them, and
 * `maxBatchBytes` of JSON, in one `ingest_write_batch` call and one commit
 * (see takeBatch: one tenant's large requests never hold up another's small
 * ones, and a batch that times out is retried one by one). Each request is still
 * all-or-nothing and answered only after its batch committed. At low load a
 * request goes alone, at once. Bounding in-flight queries below the pool size
 * also keeps them from piling up in postgres.js's own queue, which slows down
 * as it grows. Each call is one statement with its values inline, sent with
 * the simple query protocol: one round trip (see sql_literal.ts).
 *
 * @module
 */
import postgres from "postgres";
import {
  failureOfSqlState,
  type ReadingsItem,
  readingsOutcome,
  refusal,
  type ResolvedKey,
  type Store,
  StoreError,
  unreadableAnswer,
  type WriteRequest,
  type WriteResult,
} from "./store.ts";
import { DEFAULT_MAX_BATCH_BYTES, type LimitDefaults } from "./config.ts";
import { sqlLiteral } from "./sql_literal.ts";
import { callJson, createWriteLanes, type PendingWrite } from "./write_lanes.ts";
import { createKeyLeases, KEY_LEASE_SECONDS, type KeyLeases } from "./key_leases.ts";

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
  /** Most characters of JSON in one group commit (default {@linkcode DEFAULT_MAX_BATCH_BYTES}); a larger request goes alone. */
  maxBatchBytes?: number;
  /** Most write calls in flight at once (default: the pool size); the rest queue and coalesce. */
  writeConcurrency?: number;
  /** The limits' defaults every write passes to the database (`p_limits`); none when absent. */
  limits?: LimitDefaults;
  /**
   * Seconds of a high key limit's rate the database may lend at once (default {@linkcode KEY_LEASE_SECONDS};
   * 0: no leases). See key_leases.ts.
   */
  keyLeaseSeconds?: number;
}

/**
 * What `ingest_write_batch` returns: one result per request, in order; no
 * `results` when every request was stored, observed at `received_at`, and
 * superseded nothing.
 */
interface BatchResult {
  received_at: string;
  results?: (
    | { observed_at: string; superseded: string[] }
    | { replay: { observed_at: string; superseded: string[]; received_at: string } }
    | { code: string; limit?: unknown }
  )[];
  /** The leases this call lent: `{key_id: requests}`. */
  leases?: Record<string, number>;
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
  const sql = openPool(url, options);
  // The limits' defaults, as the literal every write call ends with.
  const calls = createWriteCalls(sql, `${sqlLiteral(JSON.stringify(limitsArgument(options)))}::jsonb`);
  const leases = createKeyLeases();
  const write = createWriteLanes(
    Math.min(options.writeConcurrency ?? options.poolSize, options.poolSize),
    { maxBatch: options.maxBatch ?? 64, maxBytes: options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES },
    (batch) => batch[0]!.request.readings ? runReadings(calls, batch) : runPayloads(calls, leases, batch),
  );

  /** One read call; its failure classified. */
  async function read(text: string): Promise<unknown> {
    try {
      const [row] = await calls.query(text);
      return row?.r ?? null;
    } catch (error) {
      throw toStoreError(error);
    }
  }

  return {
    async resolveKey(keyHash) {
      return await read(`select public.ingest_resolve_key(${sqlLiteral(keyHash)}) as r`) as ResolvedKey | null;
    },
    usage(keyId) {
      return read(`select public.ingest_usage(${sqlLiteral(keyId)}::uuid, ${calls.limitsArg}) as r`);
    },
    async flushBroadcasts() {
      return await read(`select public.ingest_flush_broadcasts(${calls.limitsArg}) as r`) as number | null;
    },
    write,
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}

/** `p_limits`: the limits' defaults, and the leases this store spends (none without limits). */
function limitsArgument(options: PostgresStoreOptions): Partial<LimitDefaults> & { key_lease_seconds?: number } {
  if (!options.limits) return {};
  const seconds = options.keyLeaseSeconds ?? KEY_LEASE_SECONDS;
  return seconds > 0 ? { ...options.limits, key_lease_seconds: seconds } : options.limits;
}

/** The pool: no prepared statements (Supabase's pooler runs in transaction mode), quick reconnection. */
function openPool(url: string, options: PostgresStoreOptions): postgres.Sql {
  return postgres(url, {
    max: options.poolSize,
    prepare: false,
    connect_timeout: options.connectTimeoutS ?? 5,
    // postgres.js waits up to 20 s between reconnection attempts after a few
    // failures, which keeps requests hanging long after the database is back.
    // Retry within half a second: during an outage each request fails (503)
    // quickly, and the first request after recovery gets through.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 0.5),
    idle_timeout: 60,
    onnotice: () => {},
    // Startup parameters. TimeZone=UTC: what the database returns outside the
    // write functions (a key's expires_at) comes in UTC whatever the database's
    // zone. A direct connection and PgBouncer (which tracks TimeZone) apply it;
    // Supavisor's transaction mode does not forward startup parameters, so the
    // write functions format their times themselves and nothing depends on it.
    connection: { application_name: "ingest-data", statement_timeout: options.statementTimeoutMs, TimeZone: "UTC" },
  });
}

/** The write functions' calls, each one statement with its values inline. */
interface WriteCalls {
  limitsArg: string;
  query(text: string): Promise<postgres.Row[]>;
  writeOne(request: WriteRequest): Promise<WriteResult>;
  writeMany(batch: PendingWrite[], leased?: boolean[]): Promise<BatchResult | undefined>;
  writeReadings(batch: PendingWrite[]): Promise<ReadingsItem[]>;
}

/** The calls of `ingest_write`, `ingest_write_batch` and `ingest_write_readings`, each ending with `limitsArg`. */
function createWriteCalls(sql: postgres.Sql, limitsArg: string): WriteCalls {
  /** One statement, its values inline as literals: one round trip (see sql_literal.ts). */
  function query(text: string): Promise<postgres.Row[]> {
    return sql.unsafe(text).simple();
  }

  async function writeMany(batch: PendingWrite[], leased?: boolean[]): Promise<BatchResult | undefined> {
    const [row] = await query(
      `select public.ingest_write_batch(${sqlLiteral(callJson(batch, leased))}::jsonb, ${limitsArg}) as r`,
    );
    return row?.r as BatchResult | undefined;
  }

  async function writeReadings(batch: PendingWrite[]): Promise<ReadingsItem[]> {
    const [row] = await query(
      `select public.ingest_write_readings(${sqlLiteral(callJson(batch))}::jsonb, ${limitsArg}) as r`,
    );
    const results = (row?.r as { results?: unknown } | undefined)?.results;
    return Array.isArray(results) ? results as ReadingsItem[] : [];
  }

  async function writeOne(request: WriteRequest): Promise<WriteResult> {
    const observedAt = request.observedAt ? `${sqlLiteral(request.observedAt)}::timestamptz` : "null";
    const [row] = await query(
      `select public.ingest_write(${sqlLiteral(request.datasourceId)}::uuid, ${sqlLiteral(request.keyId)}::uuid, ${
        sqlLiteral(JSON.stringify(request.values))
      }::jsonb, ${observedAt}, ${limitsArg}) as r`,
    );
    const result = row?.r as WriteResult | { code: string; limit: unknown } | undefined;
    if (result && "code" in result) throw refusal(result.code, result.limit);
    if (typeof result?.observed_at !== "string" || typeof result.received_at !== "string") throw unreadableAnswer();
    return result;
  }

  return { limitsArg, query, writeOne, writeMany, writeReadings };
}

/**
 * Writes a call of single payloads; resolves (never rejects) to the function that answers its requests. A call of
 * several spends the leases this instance holds on their keys, and records those it lends.
 */
async function runPayloads(calls: WriteCalls, leases: KeyLeases, batch: PendingWrite[]): Promise<() => void> {
  try {
    if (batch.length === 1 && !batch[0]!.request.idempotency) {
      // A request alone goes through ingest_write, which costs less than a batch of one.
      const [{ request, resolve }] = batch as [PendingWrite];
      const result = await calls.writeOne(request);
      return () => resolve(result);
    }
    const leased = batch.length > 1 ? batch.map(({ request }) => leases.take(request.keyId)) : undefined;
    const sentAt = Date.now();
    const answer = await calls.writeMany(batch, leased);
    leases.grant(answer?.leases, sentAt);
    return () => batch.forEach((pending, i) => settle(pending, () => batchOutcome(pending.request, answer, i)));
  } catch (error) {
    return await afterFailure(calls, batch, error);
  }
}

/** Writes a call of readings requests; resolves (never rejects) to the function that answers them. */
async function runReadings(calls: WriteCalls, batch: PendingWrite[]): Promise<() => void> {
  try {
    const results = await calls.writeReadings(batch);
    return () => batch.forEach((pending, i) => settle(pending, () => readingsOutcome(pending.request, results[i])));
  } catch (error) {
    return await afterFailure(calls, batch, error);
  }
}

/**
 * A failed call: its requests are refused with its failure when it was one request or the database was
 * unreachable. Otherwise something in one request that the batch could not contain, or a batch too slow as a
 * whole (statement timeout): each request goes alone, so that it costs no other request its write, and only a
 * request that times out alone is answered 503.
 */
async function afterFailure(calls: WriteCalls, batch: PendingWrite[], error: unknown): Promise<() => void> {
  const failure = toWriteError(error);
  if (batch.length === 1 || (failure.kind === "unavailable" && !isStatementTimeout(error))) {
    return () => batch.forEach(({ reject }) => reject(failure));
  }
  return await runAlone(calls, batch);
}

/** Writes each request of a failed batch on its own; each is answered with its own outcome. */
async function runAlone(calls: WriteCalls, batch: PendingWrite[]): Promise<() => void> {
  const outcomes: (() => void)[] = [];
  for (const pending of batch) {
    outcomes.push(
      await writeAlone(calls, pending).then((result) => () => pending.resolve(result), (error) => {
        const failure = toWriteError(error);
        return () => pending.reject(failure);
      }),
    );
  }
  return () => outcomes.forEach((answer) => answer());
}

/** One request in a call of its own, through the function its kind takes. */
function writeAlone(calls: WriteCalls, pending: PendingWrite): Promise<WriteResult> {
  const { request } = pending;
  if (request.readings) {
    return calls.writeReadings([pending]).then(([item]) => throwRefusal(readingsOutcome(request, item)));
  }
  if (request.idempotency) {
    return calls.writeMany([pending]).then((answer) => throwRefusal(batchOutcome(request, answer, 0)));
  }
  return calls.writeOne(request);
}

function throwRefusal(outcome: WriteResult | StoreError): WriteResult {
  if (outcome instanceof StoreError) throw outcome;
  return outcome;
}

/** Whether a write failed on the statement timeout (57014): a batch that took too long as a whole. */
function isStatementTimeout(error: unknown): boolean {
  const e = error as { name?: string; code?: string };
  return e.name === "PostgresError" && e.code === "57014";
}

/**
 * Answers a queued request with its outcome. Nothing that goes wrong here
 * turns a committed write into a refusal: an answer that cannot be read is
 * an unavailable one (503, replayed by a retry with the same Idempotency-Key).
 */
function settle({ resolve, reject }: PendingWrite, outcome: () => WriteResult | StoreError): void {
  let result: WriteResult | StoreError;
  try {
    result = outcome();
  } catch {
    result = unreadableAnswer();
  }
  if (result instanceof StoreError) reject(result);
  else resolve(result);
}

/** The WriteResult of request `i` of an `ingest_write_batch` answer, or the StoreError refusing it. */
function batchOutcome(request: WriteRequest, answer: BatchResult | undefined, i: number): WriteResult | StoreError {
  if (typeof answer?.received_at !== "string") return unreadableAnswer();
  const { received_at, results } = answer;
  // Without results, every request was stored, observed when received, with nothing superseded.
  const item = results ? results[i] : { observed_at: received_at, superseded: [] };
  if (item && "replay" in item) {
    const { observed_at, superseded, received_at } = item.replay ?? {};
    if (typeof observed_at !== "string" || typeof received_at !== "string") return unreadableAnswer();
    return { stored: storedKeys(request.values), superseded, observed_at, received_at, replayed: true };
  }
  if (item && "code" in item) return refusal(item.code, (item as { limit?: unknown }).limit);
  if (typeof item?.observed_at !== "string") return unreadableAnswer();
  return {
    stored: storedKeys(request.values),
    superseded: item.superseded,
    observed_at: item.observed_at,
    received_at,
  };
}

/** The DataKeys of a request in code point order, as `ingest_write` lists them. */
function storedKeys(values: Record<string, unknown>): string[] {
  return Object.keys(values).sort();
}

/**
 * Classifies a write's failure: as toStoreError, but a failure that is neither
 * the database's refusal nor a lost connection (the answer could not be read)
 * may follow a commit, and is never answered as "not stored".
 */
function toWriteError(error: unknown): StoreError {
  const failure = toStoreError(error);
  const fromDatabase = (error as { name?: string }).name === "PostgresError";
  return failure.kind === "failed" && !fromDatabase && !(error instanceof StoreError) ? unreadableAnswer() : failure;
}

/** Classifies a postgres.js failure; the message keeps no SQL and no values. */
function toStoreError(error: unknown): StoreError {
  if (error instanceof StoreError) return error;
  const e = error as { name?: string; code?: string; message?: string };
  if (e.name === "PostgresError") {
    const kind = failureOfSqlState(e.code);
    // A data exception's message quotes the value: say what kind of value instead.
    if (kind === "invalid" && e.code?.startsWith("22")) {
      return new StoreError(kind, "a value the database cannot store (an id, a time or text out of range)");
    }
    if (kind && kind !== "unavailable" && kind !== "failed") return new StoreError(kind, e.message ?? kind);
    return new StoreError(kind ?? "failed", `database error ${e.code}`);
  }
  if (e.code && NETWORK_CODES.has(e.code)) return new StoreError("unavailable", `database unreachable (${e.code})`);
  return new StoreError("failed", `store failure (${e.name ?? "unknown"})`);
}
