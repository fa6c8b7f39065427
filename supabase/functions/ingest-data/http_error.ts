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

/** Most issues one response lists; checking stops once they are found. */
export const MAX_ISSUES = 100;

/**
 * The 400 listing a payload's issues, at most {@linkcode MAX_ISSUES}: the message quotes the first and counts the
 * others, or, with a full list, says that it stops there and that there may be more.
 */
export function payloadIssuesError(code: string, issues: PayloadIssue[]): HttpError {
  const listed = issues.slice(0, MAX_ISSUES);
  const others = listed.length - 1;
  const more = listed.length === MAX_ISSUES
    ? ` (and ${others} more issues; the list stops at ${MAX_ISSUES}, there may be more)`
    : others > 0
    ? ` (and ${others} more issue${others > 1 ? "s" : ""})`
    : "";
  return new HttpError(400, code, `Cannot parse payload: ${listed[0]!.message}${more}`, { issues: listed });
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
