/**
 * `deno task openapi`: writes docs/openapi.json from the function's zod
 * schemas (tests/function/openapi_test.ts fails when the copy is stale).
 */
import { buildOpenApiDocument } from "../supabase/functions/ingest-data/openapi.ts";

/** The committed document's text: two-space JSON and a final newline. */
export function openApiText(): string {
  return JSON.stringify(buildOpenApiDocument(), null, 2) + "\n";
}

if (import.meta.main) {
  const path = new URL("../docs/openapi.json", import.meta.url);
  await Deno.writeTextFile(path, openApiText());
  console.log(`Wrote ${path.pathname}`);
}
