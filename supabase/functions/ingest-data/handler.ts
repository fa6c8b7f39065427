/**
 * The ingest-data request handler: authenticate, validate, store, answer.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { hashApiKey, invalidApiKey, readApiKey, unauthorized } from "./api_key.ts";
import { type Body, readJsonBody } from "./body.ts";
import type { Config } from "./config.ts";
import { buildExampleSchema } from "./example_schema.ts";
import { errorResponse, HttpError } from "./http_error.ts";
import { createKeyResolver, LookupLimitedError } from "./key_resolver.ts";
import { defaultLogSink } from "./log_sink.ts";
import { buildPayloadValidator, type PayloadValidator } from "./payload_schema.ts";
import { createRateLimiter, type RateDecision } from "./rate_limiter.ts";
import { readReadings } from "./readings.ts";
import { type LimitRefusal, type ResolvedKey, type Store, StoreError } from "./store.ts";
import { formatTime, parseTime, TimeError } from "./time.ts";

/** One structured log line; never holds a key or payload values. */
export interface RequestLog {
  request_id: string;
  method: string;
  status: number;
  duration_ms: number;
  datasource_id?: string;
  code?: string;
  error?: string;
  /** A `?dry_run=true` request that was checked and answered 200 but stored nothing. */
  dry_run?: true;
}

/** What the handler needs: configuration, a store, and where to log. */
export interface HandlerOptions {
  config: Config;
  store: Store;
  /** Receives one line per request; defaults to JSON on stdout (`console.log` on the Edge Runtime). */
  log?: (line: RequestLog) => void;
  /** The clock, for tests. */
  now?: () => number;
}

const ALLOW = "GET, POST, OPTIONS";
/** Seconds a client should wait before retrying when the database is unavailable. */
const RETRY_AFTER_S = "5";
/** Visible ASCII, 1 to 255 characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Creates the `(request) => response` function that `Deno.serve` runs. */
export function createHandler(options: HandlerOptions): (request: Request) => Promise<Response> {
  const { config, store } = options;
  const now = options.now ?? Date.now;
  const log = options.log ?? logAsJson();
  const resolveKey = createKeyResolver(store, {
    ttlMs: config.keyCacheTtlMs,
    negativeTtlMs: config.negativeCacheTtlMs,
    lookups: config.keyLookups,
    now,
  });
  const validators = new Map<string, PayloadValidator>();
  const takeToken = createRateLimiter({ now });
  const takeReadings = createRateLimiter({ now });
  // Every response lets browsers read it; the preflight also says what they may send.
  const cors = {
    "Access-Control-Allow-Origin": config.corsOrigin,
    "Access-Control-Expose-Headers":
      "X-Request-Id, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Idempotent-Replayed",
  };
  const preflight = {
    ...cors,
    "Access-Control-Allow-Headers":
      "authorization, x-api-key, content-type, content-encoding, idempotency-key, x-client-info, apikey",
    "Access-Control-Allow-Methods": ALLOW,
    "Access-Control-Max-Age": "86400",
  };

  function validatorFor(key: ResolvedKey): PayloadValidator {
    const id = `${key.datasource_id}:${key.config_version}`;
    let validator = validators.get(id);
    if (!validator) {
      if (validators.size >= 10_000) validators.delete(validators.keys().next().value!);
      validator = buildPayloadValidator(key.widgets, config.limits);
      validators.set(id, validator);
    }
    return validator;
  }

  async function authenticate(keyHash: string): Promise<ResolvedKey> {
    const key = await resolveKey(keyHash);
    const refusal = keyRefusal(key);
    if (refusal) throw refusal;
    return key!;
  }

  /** Why the key cannot be used at all: unknown, revoked or expired; undefined when it can. */
  function keyRefusal(key: ResolvedKey | null): HttpError | undefined {
    if (!key) return invalidApiKey();
    if (key.revoked) return unauthorized("revoked_api_key", "API key revoked: create a new one on the datasource card");
    if (key.expires_at && Date.parse(key.expires_at) <= now()) {
      return unauthorized("expired_api_key", "API key expired: create a new one on the datasource card");
    }
    return undefined;
  }

  /**
   * The database refused a cached key's write (revoked, expired, deleted, or its scope or datasource changed):
   * the key is looked up again, so that this answer and every later one, GET or POST, say why.
   */
  async function relearnKey(keyHash: string, error: StoreError): Promise<unknown> {
    let key: ResolvedKey | null;
    try {
      key = await resolveKey.refresh(keyHash);
    } catch {
      return error; // the database's refusal stands
    }
    return keyRefusal(key) ?? writeRefusal(key!) ?? error;
  }

  /** Why the key cannot write: a read-only key, a disabled datasource; undefined when it can. */
  function writeRefusal(key: ResolvedKey): HttpError | undefined {
    if (!key.scopes.includes("ingest:write")) {
      return new HttpError(403, "insufficient_scope", "Forbidden: this API key is read-only (it lacks ingest:write)");
    }
    if (!key.enabled) return new HttpError(403, "datasource_disabled", "Forbidden: this datasource is disabled");
    return undefined;
  }

  /** Checks and stores a POST; the response body, and whether it replays an earlier answer. */
  async function ingest(
    request: Request,
    key: ResolvedKey,
  ): Promise<{ body: unknown; replayed: boolean; dryRun?: true }> {
    const refusal = writeRefusal(key);
    if (refusal) throw refusal;
    const query = readQuery(request.url, now());
    const idempotencyKey = readIdempotencyKey(request.headers);
    const body = await readJsonBody(request, { maxBytes: config.maxBodyBytes, maxDepth: config.limits.maxDepth });
    const validator = validatorFor(key);
    const idempotency = idempotencyKey !== undefined && !query.dryRun
      ? { key: idempotencyKey, hash: requestHash(body, query.observedAt) }
      : undefined;
    const base = { ok: true, datasource_id: key.datasource_id, ...(query.dryRun ? { dry_run: true } : {}) };

    if (Array.isArray(body.json)) {
      if (query.observedAt !== undefined) {
        throw new HttpError(
          400,
          "invalid_observed_at",
          "Cannot use ?observed_at= with readings: each reading carries its own observed_at",
        );
      }
      const readings = readReadings(body.json, validator, { now: now(), maxReadings: config.maxReadings });
      limitReadings(key, readings.length);
      if (query.dryRun) {
        return {
          body: { ...base, readings: readings.length, received_at: formatTime(now()) },
          replayed: false,
          dryRun: true,
        };
      }
      const result = await store.write({
        datasourceId: key.datasource_id,
        keyId: key.key_id,
        values: {},
        readings,
        ...(idempotency ? { idempotency } : {}),
      });
      return {
        body: {
          ...base,
          readings: result.readings,
          latest: result.latest,
          received_at: result.received_at,
        },
        replayed: result.replayed === true,
      };
    }

    const values = validator.validate(body.json);
    if (query.dryRun) {
      const at = formatTime(now());
      const stored = Object.keys(values).sort();
      return {
        body: { ...base, stored, superseded: [], observed_at: query.observedAt ?? at, received_at: at },
        replayed: false,
        dryRun: true,
      };
    }
    const result = await store.write({
      datasourceId: key.datasource_id,
      keyId: key.key_id,
      values,
      observedAt: query.observedAt,
      ...(idempotency ? { idempotency } : {}),
    });
    return {
      body: {
        ok: true,
        datasource_id: key.datasource_id,
        stored: result.stored,
        superseded: result.superseded,
        observed_at: result.observed_at,
        received_at: result.received_at,
      },
      replayed: result.replayed === true,
    };
  }

  /** Takes a batch's readings from the key's readings bucket; 429 with Retry-After when there are too few. */
  function limitReadings(key: ResolvedKey, count: number): void {
    const { perSecond, burst } = readingsLimit(key);
    if (perSecond <= 0 || count <= 1) return;
    const decision = takeReadings(key.key_id, { perSecond, burst, cost: count });
    if (!decision.allowed) {
      throw new HttpError(
        429,
        "rate_limited",
        `Too many readings: this key may send ${perSecond} readings a second in batches (${decision.remaining} left now)`,
        { headers: { "Retry-After": String(decision.retryAfterS), ...rateHeaders(decision) } },
      );
    }
  }

  /**
   * The key's readings bucket: the default one, or, for a key with its own rate_limit, one scaled like
   * the defaults (per_second × readings/s ÷ requests/s, burst × readings burst ÷ request burst, both
   * rounded up), so that a throttled key is throttled in batches too. The burst stays at least
   * INGEST_MAX_READINGS: a full batch is refused for a while, never for good.
   */
  function readingsLimit(key: ResolvedKey): { perSecond: number; burst: number } {
    const own = key.rate_limit, readings = config.readingsRateLimit, requests = config.rateLimit;
    if (own?.per_second == null && own?.burst == null) return readings;
    // With the default request limit off (0), there is no ratio to scale by: the default readings rate.
    const perSecond = own.per_second == null || requests.perSecond <= 0
      ? readings.perSecond
      : Math.ceil((own.per_second * readings.perSecond) / requests.perSecond);
    const burst = own.burst == null ? readings.burst : Math.ceil((own.burst * readings.burst) / requests.burst);
    return { perSecond, burst: Math.max(burst, config.maxReadings) };
  }

  function example(key: ResolvedKey): unknown {
    if (!key.scopes.includes("ingest:read") && !key.scopes.includes("ingest:write")) {
      throw new HttpError(403, "insufficient_scope", "Forbidden: this API key lacks ingest:read");
    }
    return buildExampleSchema(key, validatorFor(key));
  }

  /** The key's and its workspace's limits and what is left of them now, as the database counts them. */
  async function usage(key: ResolvedKey): Promise<unknown> {
    const answer = await store.usage(key.key_id);
    if (!answer || typeof answer !== "object") throw invalidApiKey(); // the key was deleted meanwhile
    return answer;
  }

  /** Takes a token from the key's bucket; 429 with Retry-After when it is empty. */
  function limitRate(key: ResolvedKey): RateDecision | undefined {
    const perSecond = key.rate_limit?.per_second ?? config.rateLimit.perSecond;
    if (perSecond <= 0) return undefined;
    const decision = takeToken(key.key_id, { perSecond, burst: key.rate_limit?.burst ?? config.rateLimit.burst });
    if (!decision.allowed) {
      throw new HttpError(429, "rate_limited", `Too many requests: this key may send ${perSecond} a second`, {
        headers: { "Retry-After": String(decision.retryAfterS), ...rateHeaders(decision) },
      });
    }
    return decision;
  }

  return async function handle(request) {
    const started = performance.now();
    const requestId = crypto.randomUUID();
    let keyHash: string | undefined;
    let key: ResolvedKey | undefined;
    let response: Response;
    let failure: HttpError | undefined;
    let internal: string | undefined;
    let dryRun = false;
    try {
      const route = routeOf(request.url);
      if (!route) {
        throw new HttpError(404, "not_found", "Not found: the endpoint is /functions/v1/ingest-data");
      } else if (request.method === "OPTIONS") {
        response = new Response(null, { status: 204, headers: { ...preflight, "X-Request-Id": requestId } });
      } else if (route === "openapi") {
        response = await openApiResponse(request.method, { ...cors, "X-Request-Id": requestId });
      } else if (route === "usage") {
        if (request.method !== "GET") {
          throw new HttpError(405, "method_not_allowed", `Method ${request.method} not allowed: use GET`, {
            headers: { Allow: "GET" },
          });
        }
        keyHash = hashApiKey(readApiKey(request.headers));
        key = await authenticate(keyHash);
        response = Response.json({ datasource_id: key.datasource_id, ...await usage(key) as object }, {
          headers: { ...cors, "X-Request-Id": requestId },
        });
      } else if (request.method !== "GET" && request.method !== "POST") {
        throw new HttpError(405, "method_not_allowed", `Method ${request.method} not allowed: use POST (or GET)`, {
          headers: { Allow: ALLOW },
        });
      } else {
        keyHash = hashApiKey(readApiKey(request.headers));
        key = await authenticate(keyHash);
        const rate = limitRate(key);
        const { body, replayed, dryRun: dry } = request.method === "GET"
          ? { body: example(key), replayed: false }
          : await ingest(request, key);
        dryRun = dry === true;
        // All headers in one literal: each Headers.set costs a validation pass.
        response = new Response(JSON.stringify(body), {
          headers: {
            ...cors,
            "Content-Type": "application/json; charset=utf-8",
            "X-Request-Id": requestId,
            ...(rate ? rateHeaders(rate) : {}),
            ...(replayed ? { "Idempotent-Replayed": "true" } : {}),
          },
        });
      }
    } catch (error) {
      const refused = keyHash && error instanceof StoreError &&
        (error.kind === "unauthorized" || error.kind === "forbidden");
      failure = toHttpError(refused ? await relearnKey(keyHash!, error) : error);
      if (failure.status >= 500) internal = describeInternal(error);
      response = errorResponse(failure, { requestId, headers: cors });
    }
    log({
      request_id: requestId,
      method: request.method,
      status: response.status,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
      ...(key ? { datasource_id: key.datasource_id } : {}),
      ...(failure ? { code: failure.code } : {}),
      ...(internal ? { error: internal } : {}),
      ...(dryRun ? { dry_run: true as const } : {}),
    });
    return response;
  };
}

/**
 * What a URL's path asks for: the endpoint (`…/ingest-data`, with or without a trailing slash), the OpenAPI
 * document (`…/ingest-data/openapi.json`), or nothing (undefined: a 404). On Supabase the path starts at the
 * function's name, locally at `/functions/v1/`; both are accepted, nothing else.
 */
function routeOf(url: string): "endpoint" | "openapi" | "usage" | undefined {
  const match = ROUTE.exec(url);
  if (!match) return undefined;
  return match[1] === "/openapi.json" ? "openapi" : match[1]?.startsWith("/usage") ? "usage" : "endpoint";
}
/** scheme://host, then the function's path, then an optional query: read without URL parsing per request. */
const ROUTE = /^[a-z]+:\/\/[^/?#]*(?:\/functions\/v1)?\/ingest-data(\/openapi\.json|\/usage\/?|\/)?(?:[?#]|$)/;
let openApiText: Promise<string> | undefined;

/** The OpenAPI document, built on first use: its generator stays out of the cold start. */
async function openApiResponse(method: string, headers: Record<string, string>): Promise<Response> {
  if (method !== "GET") {
    throw new HttpError(405, "method_not_allowed", `Method ${method} not allowed: use GET`, {
      headers: { Allow: "GET" },
    });
  }
  openApiText ??= import("./openapi.ts").then((m) => JSON.stringify(m.buildOpenApiDocument(), null, 2) + "\n");
  return new Response(await openApiText, {
    headers: { ...headers, "Content-Type": "application/json; charset=utf-8" },
  });
}

/** JSON lines to the runtime's log sink. */
function logAsJson(): (line: RequestLog) => void {
  const sink = defaultLogSink();
  return (line) => sink(JSON.stringify(line));
}

function rateHeaders(decision: RateDecision): Record<string, string> {
  return {
    "X-RateLimit-Limit": String(decision.limit),
    "X-RateLimit-Remaining": String(decision.remaining),
    "X-RateLimit-Reset": String(decision.resetS),
  };
}

/** What the query string asks: an observation time (canonical ISO 8601), a dry run. */
interface Query {
  observedAt?: string;
  dryRun: boolean;
}

const NO_QUERY: Query = { dryRun: false };

/** Reads `?observed_at=` (the rules of time.ts) and `?dry_run=true` or `false` (nothing else); 400 when malformed. */
function readQuery(url: string, now: number): Query {
  if (!url.includes("?")) return NO_QUERY; // the usual case: no URL parsing per request
  const params = new URL(url).searchParams;
  const raw = params.get("observed_at");
  const dry = params.getAll("dry_run");
  if (dry.length > 1 || (dry.length === 1 && dry[0] !== "true" && dry[0] !== "false")) {
    const said = dry.length > 1 ? "it is sent twice, it" : `"${dry[0]!.slice(0, 40)}"`;
    throw new HttpError(400, "invalid_query", `Cannot parse dry_run: ${said} must be true or false`);
  }
  const dryRun = dry[0] === "true";
  if (raw === null) return { dryRun };
  try {
    return { observedAt: formatTime(parseTime(raw, now)), dryRun };
  } catch (error) {
    if (!(error instanceof TimeError)) throw error;
    const message = `"observed_at" ${error.message}`;
    throw new HttpError(400, "invalid_observed_at", `Cannot parse observed_at: ${message}`, {
      issues: [{
        path: "observed_at",
        expected: "an ISO 8601 date-time with Z or an offset, or epoch milliseconds",
        message,
      }],
    });
  }
}

/** The Idempotency-Key header, when sent: 1 to 255 visible ASCII characters, else a 400. */
function readIdempotencyKey(headers: Headers): string | undefined {
  const key = headers.get("idempotency-key");
  if (key === null) return undefined;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new HttpError(
      400,
      "invalid_idempotency_key",
      "Cannot use Idempotency-Key: it must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
    );
  }
  return key;
}

/**
 * SHA-256 (hex) of what a request asks for: how its body was read, its time query and its body's text. A JSON
 * text alone says whether it is a payload or readings; the same text read as NDJSON is another request, so
 * its first line is `ndjson` (never a `?observed_at=` time, which readings refuse). A JSON request keeps the
 * form of earlier records, `<observed_at or nothing>\n<text>`, so that its retry across a deploy still replays.
 */
function requestHash(body: Body, observedAt: string | undefined): string {
  const read = body.ndjson ? "ndjson" : observedAt ?? "";
  return createHash("sha256").update(`${read}\n${body.text}`).digest("hex");
}

/** Maps store failures to HTTP; anything unknown becomes a generic 500. */
function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof LookupLimitedError) {
    // Not a 401: the key was not checked, and a client told "invalid" would stop instead of retrying.
    return new HttpError(
      503,
      "key_lookup_limited",
      "Service unavailable: this instance is checking too many API keys it has not seen before, so this key " +
        "could not be checked yet. Retry after Retry-After.",
      { headers: { "Retry-After": String(error.retryAfterS) } },
    );
  }
  if (error instanceof StoreError) {
    switch (error.kind) {
      case "unauthorized":
        return unauthorized("invalid_api_key", "API key is not valid: it was revoked or has expired");
      case "forbidden":
        return new HttpError(403, "forbidden", `Forbidden: ${error.message}`);
      case "invalid":
        return new HttpError(400, "invalid_payload", `Cannot parse payload: ${error.message}`);
      case "in_flight":
        return new HttpError(
          409,
          "idempotency_key_in_flight",
          "Conflict: a request with this Idempotency-Key is still being stored; retry it in a second for its answer",
          { headers: { "Retry-After": "1" } },
        );
      case "reused":
        return new HttpError(
          422,
          "idempotency_key_reused",
          "Cannot reuse Idempotency-Key: it was used for a request with another body; use a new key for a new request",
        );
      case "limited":
        return limitHttpError(error.limit!);
      case "unavailable":
        return new HttpError(
          503,
          "service_unavailable",
          "Service unavailable: the database cannot be reached. Retry later.",
          {
            headers: { "Retry-After": RETRY_AFTER_S },
          },
        );
    }
  }
  return new HttpError(500, "internal_error", "Internal error: the request was not stored. Retry later.");
}

/** What each limit is called in a 429's message. */
const LIMIT_NAMES: Record<LimitRefusal["limit"], string> = {
  key_requests: "this key's requests per second",
  key_readings: "this key's readings per second",
  workspace_readings: "the workspace's readings per second",
  workspace_day: "the workspace's readings per day (UTC)",
  workspace_month: "the workspace's readings per month (UTC)",
};

/** The 429 of a request the database's limits refused: which limit, what is left, when it resets. */
function limitHttpError(limit: LimitRefusal): HttpError {
  const name = LIMIT_NAMES[limit.limit] ?? limit.limit;
  const headers = {
    "Retry-After": String(limit.retry_after_s),
    "X-RateLimit-Limit": String(limit.limit_value),
    "X-RateLimit-Remaining": String(limit.remaining),
    "X-RateLimit-Reset": String(limit.reset_s),
  };
  if (limit.code === "quota_exceeded") {
    return new HttpError(
      429,
      "quota_exceeded",
      `Quota exceeded: ${name} (${limit.limit_value} readings) is used up; it resets in ${limit.reset_s} s. ` +
        "Nothing was stored.",
      { headers },
    );
  }
  return new HttpError(
    429,
    "rate_limited",
    `Too many requests: over ${name} (${limit.per_second} a second, bursts of ${limit.limit_value}); ` +
      `retry in ${limit.retry_after_s} s. Nothing was stored.`,
    { headers },
  );
}

/** A log-safe description of an unexpected error: its class and code, never its message or stack. */
function describeInternal(error: unknown): string {
  if (error instanceof StoreError) return `StoreError ${error.kind}: ${error.message}`;
  const e = error as { name?: string; code?: string };
  return [e?.name ?? typeof error, e?.code].filter(Boolean).join(" ");
}
