/**
 * Supabase Edge Function `ingest-data`: wires Deno.serve to the handler.
 *
 * @module
 */
import { loadConfig } from "./config.ts";
import { createHandler } from "./handler.ts";
import { createStore } from "./create_store.ts";

const config = loadConfig(Deno.env.toObject());
const handler = createHandler({ config, store: createStore(config.store) });

// On Supabase the runtime decides where to listen; locally PORT may choose.
const port = Deno.env.get("PORT");
Deno.serve(port ? { port: Number(port) } : {}, handler);
