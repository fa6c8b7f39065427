/**
 * Reading the request body as JSON (or NDJSON) within a size limit, gzip or not.
 *
 * @module
 */
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { HttpError } from "./http_error.ts";
import { notJsonError } from "./json_error.ts";

/** A parsed body: the JSON value, and the text it was parsed from. */
export interface Body {
  /** The parsed JSON; for NDJSON, the array of its lines' values. */
  json: unknown;
  /** The decoded text (after gzip). */
  text: string;
  /** True when the body was NDJSON (`Content-Type: application/x-ndjson`). */
  ndjson: boolean;
}

/**
 * Reads and parses the JSON body: 413 past `maxBytes` (checked while reading;
 * for gzip, as sent and again once decompressed), 415 for a Content-Encoding
 * other than gzip, 400 when it is not gzip, UTF-8 or JSON, or nests deeper
 * than `maxDepth` (checked before parsing),
 * 415 when it is not JSON and its Content-Type says so (a form, multipart).
 * With `Content-Type: application/x-ndjson`, each non-empty line is one JSON
 * value and the result is their array.
 */
export async function readJsonBody(request: Request, limits: { maxBytes: number; maxDepth: number }): Promise<Body> {
  const { maxBytes, maxDepth } = limits;
  const encoding = request.headers.get("content-encoding")?.trim().toLowerCase();
  const gzip = encoding === "gzip" || encoding === "x-gzip";
  if (encoding && !gzip && encoding !== "identity") {
    throw new HttpError(
      415,
      "unsupported_encoding",
      `Content-Encoding ${encoding.slice(0, 40)} is not supported: send the body as is (identity) or gzip`,
      { headers: { "Accept-Encoding": "gzip, identity" } },
    );
  }
  // A gzip body has the limit twice: as sent (empty stored blocks decompress to nothing), and decompressed.
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > maxBytes) throw tooLarge(maxBytes, gzip);
  let text: string;
  try {
    text = await readText(request, { maxBytes, declared, gzip });
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(400, "invalid_json", "Cannot parse payload: the body is not valid UTF-8 text");
  }
  if (text.trim() === "") {
    throw new HttpError(400, "invalid_json", "Cannot parse payload: the body is empty; send a JSON object");
  }
  if (nestsDeeperThan(text, maxDepth)) {
    throw new HttpError(400, "limit_exceeded", `Cannot parse payload: the JSON nests deeper than ${maxDepth} levels`, {
      issues: [{ path: "", expected: `at most ${maxDepth} levels of nesting`, message: "the payload nests too deep" }],
    });
  }
  const type = request.headers.get("content-type");
  if (type && /^application\/(x-)?ndjson\b/i.test(type)) return { json: parseNdjson(text), text, ndjson: true };
  try {
    return { json: JSON.parse(text), text, ndjson: false };
  } catch (error) {
    throw notJsonError(error, type);
  }
}

/** One JSON value per non-empty line; a line that is not JSON is a 400 naming it. */
function parseNdjson(text: string): unknown[] {
  const values: unknown[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() === "") continue;
    try {
      values.push(JSON.parse(lines[i]!));
    } catch (error) {
      const { message } = notJsonError(error, null);
      throw new HttpError(400, "invalid_json", message.replace("the body must be JSON", `line ${i + 1} must be JSON`));
    }
  }
  return values;
}

async function readText(
  request: Request,
  options: { maxBytes: number; declared: number; gzip: boolean },
): Promise<string> {
  const { maxBytes, declared, gzip } = options;
  if (!request.body) return "";
  // With a Content-Length (checked above), the server never reads past it:
  // read the body in one go, which costs less than a stream reader.
  const bytes = declared > 0
    ? new Uint8Array(await request.arrayBuffer())
    : await readBounded(request.body, maxBytes, gzip);
  return DECODER.decode(gzip ? await decompress(bytes, maxBytes) : bytes);
}

/** Reads the stream whole, or a 413 as soon as more than `maxBytes` have been read. */
async function readBounded(stream: ReadableStream<Uint8Array>, maxBytes: number, gzip: boolean): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes, gzip);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return all;
}

/**
 * Gunzips a body of one or more members (RFC 1952: `cat a.gz b.gz` is valid gzip), which
 * DecompressionStream refuses; node:zlib stops as soon as the output passes `maxBytes`.
 */
async function decompress(bytes: Uint8Array, maxBytes: number): Promise<Uint8Array> {
  if (bytes.byteLength === 0) return bytes;
  try {
    return await gunzipAsync(bytes, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge(maxBytes, true, "decompressed");
    throw new HttpError(400, "invalid_json", "Cannot parse payload: the body is not valid gzip data");
  }
}

const gunzipAsync = promisify(gunzip);
const DECODER = new TextDecoder("utf-8", { fatal: true });

/** True when objects and arrays nest deeper than `maxDepth`, brackets inside strings aside. */
function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > maxDepth) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** The 413; for gzip, whether the body passed the limit as sent or once decompressed. */
function tooLarge(maxBytes: number, gzip: boolean, past: "sent" | "decompressed" = "sent"): HttpError {
  const limit = !gzip
    ? `${maxBytes} bytes`
    : past === "sent"
    ? `${maxBytes} bytes as sent and once decompressed (the body is gzip)`
    : `${maxBytes} bytes once decompressed (the body is gzip)`;
  return new HttpError(413, "payload_too_large", `Payload too large: the limit is ${limit}`);
}
