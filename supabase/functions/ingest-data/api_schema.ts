/**
 * The zod schemas of what the API sends and receives, besides the payload
 * schema each datasource builds from its widgets (payload_schema.ts): the
 * response bodies' types are inferred from them, and openapi.ts documents them.
 *
 * @module
 */
import { z } from "zod";

/** A DataKey or sub-key name, as the database's widget constraints allow it. */
const KEY_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** One problem with the payload: where it is and what was expected there. */
export const payloadIssueSchema = z.object({
  path: z.string().meta({
    description: "Dotted path into the payload, e.g. `motor_stats.rpm`; empty for the payload itself",
    example: "motor_stats.rpm",
  }),
  expected: z.string().meta({
    description: "What the value there should be",
    example: "a number or a string",
  }),
  message: z.string().meta({
    description: "The whole sentence",
    example: '"motor_stats.rpm" must be a number or a string',
  }),
}).meta({ id: "PayloadIssue" });

/** Every machine error code, with its status and when it is answered. */
export const ERROR_CODES = {
  invalid_json: [400, "the body is empty, not UTF-8 or not valid JSON"],
  invalid_payload: [
    400,
    "not an object, unknown DataKey, wrong shape; see `issues`",
  ],
  invalid_observed_at: [
    400,
    "`observed_at` is not an ISO 8601 date-time or is more than 5 minutes ahead",
  ],
  limit_exceeded: [400, "too many DataKeys or readings, or too deep a nesting"],
  invalid_query: [
    400,
    "a query parameter is malformed, e.g. `dry_run` other than `true` or `false`, or sent twice",
  ],
  invalid_idempotency_key: [
    400,
    "`Idempotency-Key` is not 1 to 255 visible ASCII characters",
  ],
  missing_api_key: [401, "no `X-API-Key` nor `Authorization: Bearer`"],
  invalid_api_key: [401, "the key is malformed or unknown"],
  revoked_api_key: [401, "the key was revoked"],
  expired_api_key: [401, "the key has expired"],
  unsupported_auth_scheme: [
    401,
    "`Authorization` other than `Bearer <key>`, e.g. Basic (`curl -u`)",
  ],
  insufficient_scope: [
    403,
    "the key lacks the scope (`ingest:write` to POST, `ingest:read` or `ingest:write` to GET)",
  ],
  datasource_disabled: [403, "the datasource is disabled"],
  forbidden: [
    403,
    "the database refused the write: scope or datasource changed since the key was cached",
  ],
  not_found: [404, "a path other than the endpoint (with or without a trailing slash) or its `/openapi.json`"],
  method_not_allowed: [405, "not GET, POST or OPTIONS"],
  idempotency_key_in_flight: [
    409,
    "a request with this `Idempotency-Key` is still being stored; retry after `Retry-After`",
  ],
  payload_too_large: [
    413,
    "the body is over the size limit (1 MiB by default); a gzip body, as sent or once decompressed",
  ],
  unsupported_media_type: [
    415,
    "not JSON, and the Content-Type says it is a form, multipart or text",
  ],
  unsupported_encoding: [
    415,
    "a `Content-Encoding` other than gzip or identity",
  ],
  idempotency_key_reused: [
    422,
    "this `Idempotency-Key` was used with another body",
  ],
  rate_limited: [
    429,
    "over a rate: the key's requests or readings per second, or its workspace's readings per second " +
    "(the message names it; `X-RateLimit-*` describe it); nothing was stored",
  ],
  quota_exceeded: [
    429,
    "the workspace's readings per UTC day or month are used up; `Retry-After` is when the quota resets; " +
    "nothing was stored",
  ],
  internal_error: [500, "unexpected; nothing was stored"],
  service_unavailable: [
    503,
    "the database is unreachable or timed out; nothing was stored",
  ],
  key_lookup_limited: [
    503,
    "a key this instance has not seen yet, while its budget of key lookups is spent; retry after `Retry-After`",
  ],
} as const satisfies Record<string, readonly [number, string]>;

/** A machine error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The JSON body of every error response. */
export const errorBodySchema = z.object({
  code: z.string().meta({
    description: "Stable machine code (see the list under each status)",
    example: "invalid_payload",
  }),
  message: z.string().meta({
    description: "What went wrong and what to do, for a human",
    example: 'Cannot parse payload: "motor_stats.rpm" must be a number or a string',
  }),
  issues: z.array(payloadIssueSchema).max(100).meta({
    description: "The problems with the payload, at most 100 (checking stops there, and the message then says the " +
      "list stops at 100); empty for other errors",
  }),
  request_id: z.uuid().meta({
    description: "Also in the `X-Request-Id` header and the log line",
  }),
}).meta({
  id: "ErrorBody",
  description: "Nothing of the request was written.",
});

const scalar = z.union([z.number(), z.string()]).meta({
  description: "SingleData: a number or a string",
});

/**
 * Any datasource's payload, in general: DataKey -> a SingleData scalar, or an
 * object of sub-keys (DoubleData scalars, chart arrays). The exact schema of a
 * datasource comes from its widgets: GET returns it.
 */
export const payloadSchema = z.record(
  z.string().regex(KEY_NAME),
  z.union([
    scalar,
    z.record(
      z.string().regex(KEY_NAME),
      z.union([
        scalar.meta({
          description: "DoubleData: a sub-key's number or string",
        }),
        z.array(z.union([z.string(), z.number()])).meta({
          description: "BarChart/LineChart: the labels (strings or numbers) or the values (numbers), of equal length",
        }),
      ]),
    ).meta({
      description: "DoubleData: exactly its two sub-keys; BarChart/LineChart: its labels and values arrays",
    }),
  ]),
).meta({
  id: "Payload",
  description: "One JSON object: each key is the DataKey of a widget linked to the datasource (at least one). " +
    "GET returns the datasource's exact JSON Schema and an example.",
});

/** An observation time: ISO 8601 with `Z` or an offset, or an integer of epoch milliseconds (see time.ts). */
export const timeSchema = z.union([
  z.string().meta({ description: "ISO 8601 date-time with `Z` or an offset", example: "2026-11-26T09:58:00Z" }),
  z.int().meta({ description: "Epoch milliseconds (10^11 or more: smaller numbers look like seconds)" }),
]).meta({ id: "ObservationTime" });

/** One reading of a batch: its own time and values exactly as in a single payload. */
export const readingSchema = z.object({
  observed_at: timeSchema,
  values: payloadSchema,
}).strict().meta({ id: "Reading" });

/** A batch of readings: a JSON array, or the same objects one per line as NDJSON. */
export const readingsSchema = z.array(readingSchema).min(1).meta({
  id: "Readings",
  description: "Readings with their own times, all stored or none (up to INGEST_MAX_READINGS, 10,000)",
});

/** A time in a response: UTC, `Z`, milliseconds. */
const responseTime = (description: string) =>
  z.string().meta({ description: `${description} (UTC, \`Z\`, milliseconds)`, example: "2026-11-26T10:00:00.123Z" });

/** `"dry_run": true` when `?dry_run=true`: checked, nothing written. */
const dryRun = z.literal(true).optional().meta({ description: "Present with `?dry_run=true`: nothing was written" });

/** The body of a 200 to POST of a batch of readings. */
export const readingsResultSchema = z.object({
  ok: z.literal(true),
  datasource_id: z.uuid(),
  dry_run: dryRun,
  readings: z.int().meta({ description: "How many readings were stored (or would be, in a dry run)" }),
  latest: z.array(z.string()).optional().meta({
    description: "The DataKeys whose latest value this request moved (absent in a dry run)",
  }),
  received_at: responseTime("When the request was committed"),
}).meta({ id: "ReadingsResult" });

/** The body of a 200 to POST: the values are committed. */
export const ingestResultSchema = z.object({
  ok: z.literal(true),
  datasource_id: z.uuid(),
  dry_run: dryRun,
  stored: z.array(z.string()).meta({
    description: "The DataKeys stored (history, and latest value unless superseded)",
  }),
  superseded: z.array(z.string()).meta({
    description: "DataKeys whose latest value was observed later than this request's: kept in history only",
  }),
  observed_at: responseTime("When the values were measured"),
  received_at: responseTime("When the request was committed"),
}).meta({ id: "IngestResult" });

/** The body of a 200 to GET: the datasource's Example Schema. */
/** A bucket as GET /usage shows it; null when that limit is off. */
const bucketSchema = z.object({
  limit: z.number().meta({ description: "The bucket's size (burst)" }),
  per_second: z.number(),
  remaining: z.number().meta({ description: "Whole requests or readings it holds now" }),
  reset_s: z.number().meta({ description: "Seconds until it is full again" }),
}).nullable();

/** A quota as GET /usage shows it. */
const quotaSchema = z.object({
  limit: z.number().nullable().meta({ description: "Readings allowed in the UTC day or month; null: no quota" }),
  used: z.number(),
  remaining: z.number().optional(),
  reset_s: z.number().optional(),
  resets_at: z.string().optional(),
});

/** GET /usage: what the key and its workspace may still send, as the database counts it across every instance. */
export const usageSchema = z.object({
  datasource_id: z.string(),
  key: z.object({ requests: bucketSchema, readings: bucketSchema }),
  workspace: z.object({ readings: bucketSchema, day: quotaSchema, month: quotaSchema }),
  throttled_last_hour: z.number().meta({
    description: "Requests of this datasource refused by a limit in this hour and the last",
  }),
}).meta({ id: "Usage" });

export const exampleSchemaSchema = z.object({
  datasource: z.object({
    id: z.uuid(),
    name: z.string(),
    enabled: z.boolean(),
    data_keys: z.array(z.string()).meta({
      description: "The DataKeys of the linked widgets, sorted",
    }),
  }),
  example: z.record(z.string(), z.unknown()).meta({
    description: "A payload POST accepts",
  }),
  json_schema: z.record(z.string(), z.unknown()).meta({
    description: "JSON Schema (2020-12) of the payload",
  }),
}).meta({ id: "ExampleSchema" });
