/**
 * Reading the request body as JSON within a size limit.
 *
 * @module
 */
import { HttpError } from "./http_error.ts";
import { notJsonError } from "./json_error.ts";

/**
 * Reads and parses the JSON body: 413 past `maxBytes` (checked while reading),
 * 400 when it is not JSON or nests deeper than `maxDepth` (checked before parsing),
 * 415 when it is not JSON and its Content-Type says so (a form, multipart).
 */
export async function readJsonBody(request: Request, limits: { maxBytes: number; maxDepth: number }): Promise<unknown> {
  const { maxBytes, maxDepth } = limits;
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > maxBytes) throw tooLarge(maxBytes);
  let text: string;
  try {
    text = await readText(request, maxBytes, declared);
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
  try {
    return JSON.parse(text);
  } catch (error) {
    throw notJsonError(error, request.headers.get("content-type"));
  }
}

async function readText(request: Request, maxBytes: number, declared: number): Promise<string> {
  if (!request.body) return "";
  // With a Content-Length (checked above), the server never reads past it:
  // read the body in one go, which costs less than a stream reader.
  if (declared > 0) return DECODER.decode(await request.arrayBuffer());
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return DECODER.decode(chunks[0]);
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return DECODER.decode(all);
}

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

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "payload_too_large", `Payload too large: the limit is ${maxBytes} bytes`);
}
