/**
 * Wording the error for a body that is not JSON, for the clients that send
 * one: a form (`curl -d` without a Content-Type, HTML forms, Node-RED with
 * an object payload and no header), multipart, or text. Never quotes the body.
 *
 * @module
 */
import { HttpError } from "./http_error.ts";

const EXAMPLE = 'one JSON object, e.g. {"temperature": 42.5}';

/**
 * The error for a body `JSON.parse` refused: 415 `unsupported_media_type` when
 * the Content-Type says it is not JSON (form, multipart, text), else 400
 * `invalid_json` with V8's reason and position but none of the input.
 */
export function notJsonError(parseError: unknown, contentType: string | null): HttpError {
  const mediaType = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (mediaType && !isJsonMediaType(mediaType)) {
    const what = mediaType === "application/x-www-form-urlencoded"
      ? "form-encoded (application/x-www-form-urlencoded, what curl -d sends without a Content-Type)"
      : mediaType.startsWith("multipart/")
      ? `a multipart form (${mediaType})`
      : `${mediaType}, and not JSON`;
    return new HttpError(
      415,
      "unsupported_media_type",
      `Cannot parse payload: the body must be JSON, but it is ${what}: send \`Content-Type: application/json\` and ${EXAMPLE}`,
    );
  }
  return new HttpError(
    400,
    "invalid_json",
    `Cannot parse payload: the body must be JSON, but it is not (${reasonOf(parseError)}): send ${EXAMPLE}`,
  );
}

/** `application/json`, `text/json`, any `+json` type, and NDJSON. */
function isJsonMediaType(mediaType: string): boolean {
  return /^(application|text)\/(json|[\w.-]+\+json|x-ndjson|ndjson)$/.test(mediaType) || mediaType === "*/*";
}

/** V8's reason without the piece of input it quotes (truncated with `...` when long). */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const token = message.match(/^Unexpected token '(.)', /s);
  if (token) return `unexpected character '${token[1]}'`;
  if (message === "Unexpected end of JSON input") return "it ends before the JSON does";
  const positioned = message.match(/^(.+?)(?: in JSON)? at position \d+ \(line (\d+) column (\d+)\)$/);
  if (positioned) {
    const what = positioned[1]!.replace(/^./, (c) => c.toLowerCase());
    return `${what} at line ${positioned[2]}, column ${positioned[3]}`;
  }
  return "it does not start like JSON";
}
