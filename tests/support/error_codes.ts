/**
 * The machine error codes the function's sources can answer with, read from
 * the sources themselves, for the tests that keep the docs true to them.
 *
 * @module
 */

const FUNCTION_DIR = new URL("../../supabase/functions/ingest-data/", import.meta.url);

/** The `code` of every HttpError the function's sources can throw, with its status. */
export async function errorCodesInSource(): Promise<Map<string, number>> {
  const codes = new Map<string, number>();
  for await (const entry of Deno.readDir(FUNCTION_DIR)) {
    if (!entry.name.endsWith(".ts")) continue;
    const source = await Deno.readTextFile(new URL(entry.name, FUNCTION_DIR));
    for (const match of source.matchAll(/HttpError\(\s*(\d{3}),\s*"([a-z_]+)"/g)) codes.set(match[2]!, +match[1]!);
    for (const match of source.matchAll(/unauthorized\(\s*"([a-z_]+)"/g)) codes.set(match[1]!, 401);
  }
  return codes;
}
