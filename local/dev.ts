/**
 * `deno task dev`: the ingest-data function on http://127.0.0.1:54321/functions/v1/ingest-data
 * with a ready database, a demo datasource and its demo API key (kept across restarts; `--new-key` replaces it).
 *
 * Database: DATABASE_URL when set, else an embedded PGlite kept in `.dev-db/`
 * (`--reset` starts it afresh; INGEST_DEV_DIR moves it). Port: PORT (default 54321). Ctrl-C stops it.
 */
import postgres from "postgres";
import { loadConfig } from "../supabase/functions/ingest-data/config.ts";
import { createStore } from "../supabase/functions/ingest-data/create_store.ts";
import { createHandler } from "../supabase/functions/ingest-data/handler.ts";
import { startEmbeddedPostgres } from "./embedded_postgres.ts";
import { applyMigrations, applyPlatformFixture } from "./migrate.ts";
import { seedDemo } from "./demo.ts";

const DEV_DIR = Deno.env.get("INGEST_DEV_DIR")?.replace(/\/?$/, "/") ??
  new URL("../.dev-db/", import.meta.url).pathname;
const PATH = "/functions/v1/ingest-data";

const reset = Deno.args.includes("--reset");
const port = Number(Deno.env.get("PORT") ?? 54321);
const external = Deno.env.get("DATABASE_URL") || undefined;

// Claim the port first: a clear message beats a stack trace after the database work.
try {
  Deno.listen({ hostname: "127.0.0.1", port }).close();
} catch {
  console.error(`Port ${port} is in use (is another dev server running?): set PORT to use another one.`);
  Deno.exit(1);
}

if (reset && !external) await Deno.remove(DEV_DIR, { recursive: true }).catch(() => {});
const embedded = external ? null : await startEmbeddedPostgres(`${DEV_DIR}pglite`);
const databaseUrl = external ?? embedded!.url;
console.log(external ? "Database: DATABASE_URL" : `Database: embedded PGlite in .dev-db/ (served at ${databaseUrl})`);

const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
await applyPlatformFixture(sql);
const applied = await applyMigrations(sql);
console.log(`Migrations: ${applied.length} applied, database up to date`);
await Deno.mkdir(DEV_DIR, { recursive: true });
const keyFile = `${DEV_DIR}demo_key`;
const demo = await seedDemo(sql, { keyFile, newKey: Deno.args.includes("--new-key") });
const keyNote = `${demo.keyReused ? "the same as last time" : "new"}: kept in ${keyFile}; --new-key replaces it`;
await sql.end();
if (embedded) await Deno.writeTextFile(`${DEV_DIR}database_url`, databaseUrl);

const config = loadConfig({ ...Deno.env.toObject(), DATABASE_URL: databaseUrl, SUPABASE_DB_URL: "" });
const store = createStore(config.store);
const handler = createHandler({
  config,
  store,
  log: (line) =>
    console.log(
      `${line.method} ${line.status} ${line.duration_ms}ms${
        line.datasource_id ? ` datasource=${line.datasource_id}` : ""
      }${line.code ? ` ${line.code}` : ""} request_id=${line.request_id}`,
    ),
});

const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (request) => {
  const path = new URL(request.url).pathname;
  if (path === PATH || path === `${PATH}/openapi.json`) return handler(request);
  return Response.json({ code: "not_found", message: `Not found: the endpoint is ${PATH}` }, { status: 404 });
});

// Listen for Ctrl-C before saying "Ctrl-C stops it." (shutdown is declared below).
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);

const endpoint = `http://127.0.0.1:${port}${PATH}`;
console.log(`
Twinnoverse Ingest is running.
  Endpoint:   ${endpoint}
  Datasource: ${demo.datasourceName} (${demo.datasourceId})
  API key:    ${demo.apiKey}   (${keyNote})

Try it:
curl -X POST '${endpoint}' \\
  --header 'Authorization: Bearer ${demo.apiKey}' \\
  --header 'Content-Type: application/json' \\
  --data-raw '{"temperature": 42.5, "motor_stats": {"rpm": 1500, "vibration": 0.75}}'

Ctrl-C stops it.
`);

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  console.log("Stopping…");
  await server.shutdown();
  await store.close();
  await embedded?.stop();
  if (embedded) await Deno.remove(`${DEV_DIR}database_url`).catch(() => {});
  Deno.exit(0);
}
