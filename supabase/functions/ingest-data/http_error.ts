/**
 * The one error type of the function: an HTTP status, a stable machine code,
 * a human message and the payload issues, turned into a JSON response.
 *
 * @module
 */
import type { z } from "zod";
import type { errorBodySchema, payloadIssueSchema } from "./api_schema.ts";

/** One problem with the payload: where it is and what was expected there (see api_schema.ts). */
export type PayloadIssue = z.infer<typeof payloadIssueSchema>;

/** An error that carries the HTTP response it should become. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly issues: PayloadIssue[];
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    options: { issues?: PayloadIssue[]; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.issues = options.issues ?? [];
    this.headers = options.headers ?? {};
  }
}

/** The JSON error body every failure answers with (see api_schema.ts). */
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** Turns any thrown value into a JSON response; unexpected errors become a generic 500. */
export function errorResponse(
  error: unknown,
  options: { requestId: string; headers?: Record<string, string> },
): Response {
  const http = error instanceof HttpError
    ? error
    : new HttpError(500, "internal_error", "Internal error: the request was not stored. Retry later.");
  const body: ErrorBody = {
    code: http.code,
    message: http.message,
    issues: http.issues,
    request_id: options.requestId,
  };
  return new Response(JSON.stringify(body), {
    status: http.status,
    headers: {
      ...options.headers,
      "Content-Type": "application/json; charset=utf-8",
      "X-Request-Id": options.requestId,
      ...http.headers,
    },
  });
}
