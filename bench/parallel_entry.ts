/**
 * The ingest-data handler as a `deno serve` module, for `deno task bench --parallel`
 * (`deno serve --parallel` runs one copy per core). Supabase runs index.ts instead.
 */
import { loadConfig } from "../supabase/functions/ingest-data/config.ts";
import { createStore } from "../supabase/functions/ingest-data/create_store.ts";
import { createHandler } from "../supabase/functions/ingest-data/handler.ts";

const config = loadConfig(Deno.env.toObject());

export default { fetch: createHandler({ config, store: createStore(config.store) }) } satisfies Deno.ServeDefaultExport;
