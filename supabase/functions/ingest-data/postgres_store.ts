/**
 * The store on postgres.js, talking SQL to the database directly (or through
 * Supabase's transaction pooler: `prepare: false`).
 *
 * Writes are group-committed: each datasource belongs to one of
 * `writeConcurrency` lanes; while a lane's batch is in flight, its new
 * requests queue, and the next batch takes up to `maxBatch` of them in one
 * `ingest_write_batch` call and one commit. Each request is still
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
  readingsPayload,
  refusal,
  type ResolvedKey,
  type Store,
  StoreError,
  unreadableAnswer,
  type WriteRequest,
  type WriteResult,
} from "./store.ts";
import { sqlLiteral } from "./sql_literal.ts";

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
  /** Most write calls in flight at once (default: the pool size); the rest queue and coalesce. */
  writeConcurrency?: number;
}

interface Lane {
  queue: PendingWrite[];
  busy: boolean;
  /** Writes queued or in flight in this lane. */
  pending: number;
}

interface PendingWrite {
  request: WriteRequest;
  resolve: (result: WriteResult) => void;
  reject: (error: StoreError) => void;
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
    | { code: string }
  )[];
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

  const maxBatch = options.maxBatch ?? 64;
  // Writes go to lanes: one batch in flight per lane, and PostgreSQL runs the
  // lanes in parallel. A datasource with writes pending stays in its lane, so
  // that concurrent batches never wait on each other's row locks; one without
  // goes to the lane with the fewest writes pending, so that busy datasources
  // do not crowd each other into one lane.
  const lanes = Array.from(
    { length: Math.min(options.writeConcurrency ?? options.poolSize, options.poolSize) },
    (): Lane => ({ queue: [], busy: false, pending: 0 }),
  );
  const assigned = new Map<string, { lane: Lane; pending: number }>();

  function enter(datasourceId: string): Lane {
    let entry = assigned.get(datasourceId);
    if (!entry) {
      const lane = lanes.reduce((least, lane) => lane.pending < least.pending ? lane : least);
      entry = { lane, pending: 0 };
      assigned.set(datasourceId, entry);
    }
    entry.pending++;
    entry.lane.pending++;
    return entry.lane;
  }

  function leave(datasourceId: string): void {
    const entry = assigned.get(datasourceId)!;
    entry.lane.pending--;
    if (--entry.pending === 0) assigned.delete(datasourceId);
  }

  function pump(lane: Lane): void {
    if (lane.busy || lane.queue.length === 0) return;
    lane.busy = true;
    const batch = lane.queue.splice(0, batchLength(lane.queue));
    (batch[0]!.request.readings ? runReadings(batch) : run(batch)).then((answer) => {
      for (const { request } of batch) leave(request.datasourceId);
      // The next batch goes to the database before this one's requests are answered.
      lane.busy = false;
      pump(lane);
      answer();
    });
  }

  /**
   * How many requests from the head of the queue go in the next call: up to
   * `maxBatch` of one kind (single payloads for ingest_write_batch, readings
   * for ingest_write_readings), readings requests up to MAX_CALL_READINGS
   * readings in all, and never two with the same Idempotency-Key (the second
   * waits for the first's answer to be recorded, then replays it).
   */
  function batchLength(queue: PendingWrite[]): number {
    const readings = queue[0]!.request.readings !== undefined;
    const limit = Math.min(queue.length, maxBatch);
    let count = 1;
    const keys = new Set<string>();
    const first = queue[0]!.request;
    if (first.idempotency) keys.add(`${first.keyId} ${first.idempotency.key}`);
    if (!readings) {
      while (count < limit && !queue[count]!.request.readings) {
        const { idempotency, keyId } = queue[count]!.request;
        if (idempotency) {
          const key = `${keyId} ${idempotency.key}`;
          if (keys.has(key)) break;
          keys.add(key);
        }
        count++;
      }
      return count;
    }
    let total = first.readings!.length;
    while (count < limit) {
      const next = queue[count]!.request;
      if (!next.readings || total + next.readings.length > MAX_CALL_READINGS) break;
      if (next.idempotency) {
        const key = `${next.keyId} ${next.idempotency.key}`;
        if (keys.has(key)) break;
        keys.add(key);
      }
      total += next.readings.length;
      count++;
    }
    return count;
  }

  /** Writes a batch of readings requests; resolves (never rejects) to the function that answers them. */
  async function runReadings(batch: PendingWrite[]): Promise<() => void> {
    try {
      const results = await writeReadings(batch.map(({ request }) => request));
      return () => batch.forEach((pending, i) => settle(pending, () => readingsOutcome(pending.request, results[i])));
    } catch (error) {
      const failure = toWriteError(error);
      if (failure.kind === "unavailable" || batch.length === 1) {
        return () => batch.forEach(({ reject }) => reject(failure));
      }
      return await runAlone(batch);
    }
  }

  /** Writes a batch; resolves (never rejects) to the function that answers its requests. */
  async function run(batch: PendingWrite[]): Promise<() => void> {
    try {
      if (batch.length === 1 && !batch[0]!.request.idempotency) {
        // A request alone goes through ingest_write, which costs less than a batch of one.
        const [{ request, resolve }] = batch as [PendingWrite];
        const result = await writeOne(request);
        return () => resolve(result);
      }
      const answer = await writeMany(batch.map(({ request }) => request));
      return () => batch.forEach((pending, i) => settle(pending, () => batchOutcome(pending.request, answer, i)));
    } catch (error) {
      const failure = toWriteError(error);
      if (failure.kind === "unavailable" || batch.length === 1) {
        return () => batch.forEach(({ reject }) => reject(failure));
      }
      // Not the database's fault: something in one request that the batch could not
      // contain. Each request goes alone, so that it costs no other request its write.
      return await runAlone(batch);
    }
  }

  /** Writes each request of a failed batch on its own; each is answered with its own outcome. */
  async function runAlone(batch: PendingWrite[]): Promise<() => void> {
    const outcomes: (() => void)[] = [];
    for (const { request, resolve, reject } of batch) {
      const write = request.readings
        ? writeReadings([request]).then(([item]) => {
          const outcome = readingsOutcome(request, item);
          if (outcome instanceof StoreError) throw outcome;
          return outcome;
        })
        : request.idempotency
        ? writeMany([request]).then((answer) => {
          const outcome = batchOutcome(request, answer, 0);
          if (outcome instanceof StoreError) throw outcome;
          return outcome;
        })
        : writeOne(request);
      outcomes.push(
        await write.then((result) => () => resolve(result), (error) => {
          const failure = toWriteError(error);
          return () => reject(failure);
        }),
      );
    }
    return () => outcomes.forEach((answer) => answer());
  }

  /** One statement, its values inline as literals: one round trip (see sql_literal.ts). */
  function query(text: string): Promise<postgres.Row[]> {
    return sql.unsafe(text).simple();
  }

  async function writeMany(requests: WriteRequest[]): Promise<BatchResult | undefined> {
    const batch = requests.map((request) => ({
      datasource_id: request.datasourceId,
      key_id: request.keyId,
      values: request.values,
      observed_at: request.observedAt ?? null,
      ...(request.idempotency
        ? { idempotency_key: request.idempotency.key, request_hash: request.idempotency.hash }
        : {}),
    }));
    const [row] = await query(`select public.ingest_write_batch(${sqlLiteral(JSON.stringify(batch))}::jsonb) as r`);
    return row?.r as BatchResult | undefined;
  }

  async function writeReadings(requests: WriteRequest[]): Promise<ReadingsItem[]> {
    const [row] = await query(
      `select public.ingest_write_readings(${sqlLiteral(JSON.stringify(requests.map(readingsPayload)))}::jsonb) as r`,
    );
    const results = (row?.r as { results?: unknown } | undefined)?.results;
    return Array.isArray(results) ? results as ReadingsItem[] : [];
  }

  async function writeOne(request: WriteRequest): Promise<WriteResult> {
    const observedAt = request.observedAt ? `${sqlLiteral(request.observedAt)}::timestamptz` : "null";
    const [row] = await query(
      `select public.ingest_write(${sqlLiteral(request.datasourceId)}::uuid, ${sqlLiteral(request.keyId)}::uuid, ${
        sqlLiteral(JSON.stringify(request.values))
      }::jsonb, ${observedAt}) as r`,
    );
    const result = row?.r as WriteResult | undefined;
    if (typeof result?.observed_at !== "string" || typeof result.received_at !== "string") throw unreadableAnswer();
    return result;
  }

  return {
    async resolveKey(keyHash) {
      try {
        const [row] = await query(`select public.ingest_resolve_key(${sqlLiteral(keyHash)}) as r`);
        return (row?.r ?? null) as ResolvedKey | null;
      } catch (error) {
        throw toStoreError(error);
      }
    },
    write(request) {
      const lane = enter(request.datasourceId);
      return new Promise<WriteResult>((resolve, reject) => {
        lane.queue.push({ request, resolve, reject });
        pump(lane);
      });
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
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
  if (item && "code" in item) return refusal(item.code);
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

/** Most readings in one ingest_write_readings call (one request may bring more, and goes alone). */
const MAX_CALL_READINGS = 10_000;

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
