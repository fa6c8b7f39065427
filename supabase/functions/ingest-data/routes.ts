/**
 * The function's paths: the endpoint, its usage and its OpenAPI document,
 * read from the URL without parsing it per request.
 *
 * @module
 */
import { HttpError } from "./http_error.ts";

/** What a request's path asks for. */
export type Route = "endpoint" | "openapi" | "usage";

/** scheme://host, then the function's path, then an optional query: read without URL parsing per request. */
const ROUTE = /^[a-z]+:\/\/[^/?#]*(?:\/functions\/v1)?\/ingest-data(\/openapi\.json|\/usage\/?|\/)?(?:[?#]|$)/;

/**
 * What a URL's path asks for: the endpoint (`…/ingest-data`, with or without a trailing slash), the OpenAPI
 * document (`…/ingest-data/openapi.json`), the key's usage (`…/ingest-data/usage`), or nothing (undefined: a
 * 404). On Supabase the path starts at the function's name, locally at `/functions/v1/`; both are accepted.
 */
export function routeOf(url: string): Route | undefined {
  const match = ROUTE.exec(url);
  if (!match) return undefined;
  return match[1] === "/openapi.json" ? "openapi" : match[1]?.startsWith("/usage") ? "usage" : "endpoint";
}

/** Throws the 405 of a method not in `allow` (the `Allow` header's value); `hint` says what to use. */
export function allowMethods(method: string, allow: string, hint = allow): void {
  if (allow.split(", ").includes(method)) return;
  throw new HttpError(405, "method_not_allowed", `Method ${method} not allowed: use ${hint}`, {
    headers: { Allow: allow },
  });
}

let openApiText: Promise<string> | undefined;

/** The OpenAPI document, built on first use: its generator stays out of the cold start. */
export async function openApiResponse(method: string, headers: Record<string, string>): Promise<Response> {
  allowMethods(method, "GET");
  openApiText ??= import("./openapi.ts").then((m) => JSON.stringify(m.buildOpenApiDocument(), null, 2) + "\n");
  return new Response(await openApiText, {
    headers: { ...headers, "Content-Type": "application/json; charset=utf-8" },
  });
}
