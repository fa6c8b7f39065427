/**
 * The ingest-data request handler: route, authenticate, limit, read and
 * validate, store, answer, log. Each step is a module of its own; this one
 * wires them and owns the response headers and the log line.
 *
 * @module
 */
import { hashApiKey, invalidApiKey, readApiKey } from "./api_key.ts";
import type { Config } from "./config.ts";
import { buildExampleSchema } from "./example_schema.ts";
import { errorResponse, HttpError } from "./http_error.ts";
import { describeInternal, toHttpError } from "./http_failure.ts";
import { createIngestPost, type IngestOutcome } from "./ingest_post.ts";
import { createKeyGate } from "./key_gate.ts";
import { defaultLogSink } from "./log_sink.ts";
import type { PayloadValidator } from "./payload_schema.ts";
import { createRequestLimits, rateHeaders } from "./request_limits.ts";
import { allowMethods, openApiResponse, routeOf } from "./routes.ts";
import { type ResolvedKey, type Store, StoreError } from "./store.ts";
import { createValidatorCache } from "./validator_cache.ts";

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

/** The endpoint's methods: the preflight's and a 405's answer. */
const ENDPOINT_METHODS = "GET, POST, OPTIONS";

/** What one request has learnt on its way, for its error answer and its log line. */
interface RequestState {
  requestId: string;
  keyHash?: string;
  key?: ResolvedKey;
  failure?: HttpError;
  internal?: string;
  dryRun?: boolean;
}

/** Headers every response carries: browsers may read it, and the headers the function sets. */
function corsHeaders(origin: string): Record<string, string> {
  return {
    "Access-Control-Allow-Origin": origin,
    "Access-Control-Expose-Headers":
      "X-Request-Id, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Idempotent-Replayed",
  };
}

/** The preflight's headers: what browsers may send, for a day. */
function preflightHeaders(cors: Record<string, string>): Record<string, string> {
  return {
    ...cors,
    "Access-Control-Allow-Headers":
      "authorization, x-api-key, content-type, content-encoding, idempotency-key, x-client-info, apikey",
    "Access-Control-Allow-Methods": ENDPOINT_METHODS,
    "Access-Control-Max-Age": "86400",
  };
}

/** Creates the `(request) => response` function that `Deno.serve` runs. */
export function createHandler(options: HandlerOptions): (request: Request) => Promise<Response> {
  const { config, store } = options;
  const now = options.now ?? Date.now;
  const log = options.log ?? logAsJson();
  const cors = corsHeaders(config.corsOrigin);
  const preflight = preflightHeaders(cors);
  const keys = createKeyGate(store, config, now);
  const limits = createRequestLimits(config, now);
  const validatorFor = createValidatorCache(config.limits);
  const ingest = createIngestPost({ config, store, validatorFor, limits, now });

  /** GET, POST and OPTIONS of the endpoint, the usage and the OpenAPI document; a 404 elsewhere. */
  function answer(request: Request, state: RequestState): Promise<Response> | Response {
    const route = routeOf(request.url);
    if (!route) throw new HttpError(404, "not_found", "Not found: the endpoint is /functions/v1/ingest-data");
    if (request.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: { ...preflight, "X-Request-Id": state.requestId } });
    }
    if (route === "openapi") return openApiResponse(request.method, { ...cors, "X-Request-Id": state.requestId });
    if (route === "usage") return answerUsage(request, state);
    allowMethods(request.method, ENDPOINT_METHODS, "POST (or GET)");
    return answerEndpoint(request, state);
  }

  /** The key's and its workspace's limits and what is left of them now, as the database counts them. */
  async function answerUsage(request: Request, state: RequestState): Promise<Response> {
    allowMethods(request.method, "GET");
    const key = await authenticate(request, state);
    const usage = await store.usage(key.key_id);
    if (!usage || typeof usage !== "object") throw invalidApiKey(); // the key was deleted meanwhile
    return Response.json({ datasource_id: key.datasource_id, ...usage }, {
      headers: { ...cors, "X-Request-Id": state.requestId },
    });
  }

  /** GET: the Example Schema; POST: the write. */
  async function answerEndpoint(request: Request, state: RequestState): Promise<Response> {
    const key = await authenticate(request, state);
    const rate = limits.limitRate(key);
    const outcome: IngestOutcome = request.method === "GET"
      ? { body: example(key, validatorFor), replayed: false }
      : await ingest(request, key);
    state.dryRun = outcome.dryRun === true;
    // All headers in one literal: each Headers.set costs a validation pass.
    return new Response(JSON.stringify(outcome.body), {
      headers: {
        ...cors,
        "Content-Type": "application/json; charset=utf-8",
        "X-Request-Id": state.requestId,
        ...(rate ? rateHeaders(rate) : {}),
        ...(outcome.replayed ? { "Idempotent-Replayed": "true" } : {}),
      },
    });
  }

  /** The request's key, checked; remembered on `state` for the error answer and the log. */
  async function authenticate(request: Request, state: RequestState): Promise<ResolvedKey> {
    state.keyHash = hashApiKey(readApiKey(request.headers));
    state.key = await keys.authenticate(state.keyHash);
    return state.key;
  }

  /** The error answer; a write the database refused for its key makes the key be looked up again first. */
  async function answerFailure(error: unknown, state: RequestState): Promise<Response> {
    const refused = state.keyHash !== undefined && error instanceof StoreError &&
      (error.kind === "unauthorized" || error.kind === "forbidden");
    state.failure = toHttpError(refused ? await keys.relearn(state.keyHash!, error as StoreError) : error);
    if (state.failure.status >= 500) state.internal = describeInternal(error);
    return errorResponse(state.failure, { requestId: state.requestId, headers: cors });
  }

  return async function handle(request) {
    const started = performance.now();
    const state: RequestState = { requestId: crypto.randomUUID() };
    let response: Response;
    try {
      response = await answer(request, state);
    } catch (error) {
      response = await answerFailure(error, state);
    }
    log(logLine(request, response, state, started));
    return response;
  };
}

/** The Example Schema of a GET, for a key that may read or write. */
function example(key: ResolvedKey, validatorFor: (key: ResolvedKey) => PayloadValidator): unknown {
  if (!key.scopes.includes("ingest:read") && !key.scopes.includes("ingest:write")) {
    throw new HttpError(403, "insufficient_scope", "Forbidden: this API key lacks ingest:read");
  }
  return buildExampleSchema(key, validatorFor(key));
}

/** The request's log line: never a key or a value. */
function logLine(request: Request, response: Response, state: RequestState, started: number): RequestLog {
  return {
    request_id: state.requestId,
    method: request.method,
    status: response.status,
    duration_ms: Math.round((performance.now() - started) * 10) / 10,
    ...(state.key ? { datasource_id: state.key.datasource_id } : {}),
    ...(state.failure ? { code: state.failure.code } : {}),
    ...(state.internal ? { error: state.internal } : {}),
    ...(state.dryRun ? { dry_run: true as const } : {}),
  };
}

/** JSON lines to the runtime's log sink. */
function logAsJson(): (line: RequestLog) => void {
  const sink = defaultLogSink();
  return (line) => sink(JSON.stringify(line));
}
