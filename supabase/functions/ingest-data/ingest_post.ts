/**
 * A POST's path once its key is known: the query and Idempotency-Key, the
 * body, validation, the write (or a dry run), and the 200's body. Readings
 * (a JSON array or NDJSON) and a payload (an object) take their own steps.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { type Body, readJsonBody } from "./body.ts";
import type { Config } from "./config.ts";
import { HttpError } from "./http_error.ts";
import { writeRefusal } from "./key_gate.ts";
import type { PayloadValidator } from "./payload_schema.ts";
import { readReadings } from "./readings.ts";
import type { RequestLimits } from "./request_limits.ts";
import type { ResolvedKey, Store } from "./store.ts";
import { formatTime, parseTime, TimeError } from "./time.ts";

/** A POST's answer: the 200's body, whether it replays an earlier answer, whether it was a dry run. */
export interface IngestOutcome {
  body: unknown;
  replayed: boolean;
  dryRun?: true;
}

/** What the POST path needs from its handler. */
export interface IngestDependencies {
  config: Config;
  store: Store;
  validatorFor: (key: ResolvedKey) => PayloadValidator;
  limits: RequestLimits;
  now: () => number;
}

/** What a POST asks for besides its body. */
interface PostRequest {
  key: ResolvedKey;
  query: Query;
  body: Body;
  validator: PayloadValidator;
  idempotency?: { key: string; hash: string };
}

/** Visible ASCII, 1 to 255 characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** Returns `(request, key) => outcome`: checks and stores one POST. */
export function createIngestPost(
  deps: IngestDependencies,
): (request: Request, key: ResolvedKey) => Promise<IngestOutcome> {
  return async function ingest(request, key) {
    const post = await readPost(request, key, deps);
    return Array.isArray(post.body.json) ? await ingestReadings(post, deps) : await ingestPayload(post, deps);
  };
}

/** The key's right to write, the query, the Idempotency-Key and the body, in that order (each may refuse). */
async function readPost(request: Request, key: ResolvedKey, deps: IngestDependencies): Promise<PostRequest> {
  const refusal = writeRefusal(key);
  if (refusal) throw refusal;
  const query = readQuery(request.url, deps.now());
  const idempotencyKey = readIdempotencyKey(request.headers);
  const { maxBodyBytes, limits } = deps.config;
  const body = await readJsonBody(request, { maxBytes: maxBodyBytes, maxDepth: limits.maxDepth });
  const validator = deps.validatorFor(key);
  const idempotency = idempotencyKey !== undefined && !query.dryRun
    ? { key: idempotencyKey, hash: requestHash(body, query.observedAt) }
    : undefined;
  return { key, query, body, validator, ...(idempotency ? { idempotency } : {}) };
}

/** Readings, each with its own time: checked, counted against the readings bucket, stored as one batch. */
async function ingestReadings(post: PostRequest, deps: IngestDependencies): Promise<IngestOutcome> {
  const { key, query } = post;
  if (query.observedAt !== undefined) {
    throw new HttpError(
      400,
      "invalid_observed_at",
      "Cannot use ?observed_at= with readings: each reading carries its own observed_at",
    );
  }
  const readings = readReadings(post.body.json as unknown[], post.validator, {
    now: deps.now(),
    maxReadings: deps.config.maxReadings,
  });
  deps.limits.limitReadings(key, readings.length);
  const base = answerBase(key, query);
  if (query.dryRun) {
    return {
      body: { ...base, readings: readings.length, received_at: formatTime(deps.now()) },
      replayed: false,
      dryRun: true,
    };
  }
  const result = await deps.store.write({
    datasourceId: key.datasource_id,
    keyId: key.key_id,
    values: {},
    readings,
    ...(post.idempotency ? { idempotency: post.idempotency } : {}),
  });
  return {
    body: { ...base, readings: result.readings, latest: result.latest, received_at: result.received_at },
    replayed: result.replayed === true,
  };
}

/** One payload, observed now or at `?observed_at=`: validated and stored. */
async function ingestPayload(post: PostRequest, deps: IngestDependencies): Promise<IngestOutcome> {
  const { key, query } = post;
  const values = post.validator.validate(post.body.json);
  if (query.dryRun) {
    const at = formatTime(deps.now());
    const stored = Object.keys(values).sort();
    return {
      body: { ...answerBase(key, query), stored, superseded: [], observed_at: query.observedAt ?? at, received_at: at },
      replayed: false,
      dryRun: true,
    };
  }
  const result = await deps.store.write({
    datasourceId: key.datasource_id,
    keyId: key.key_id,
    values,
    observedAt: query.observedAt,
    ...(post.idempotency ? { idempotency: post.idempotency } : {}),
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

/** The fields every 200 of a POST starts with. */
function answerBase(key: ResolvedKey, query: Query) {
  return { ok: true, datasource_id: key.datasource_id, ...(query.dryRun ? { dry_run: true } : {}) };
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
