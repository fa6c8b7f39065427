/**
 * `deno task dev`: the ingest-data function on http://127.0.0.1:54321/functions/v1/ingest-data
 * with a ready database, a demo datasource and its demo API key (kept across restarts; `--new-key` replaces it);
 * beside it, on the same port, the Supabase stand-ins a dashboard needs (`/rest/v1/`,
 * `/realtime/v1/websocket`) and the `.env` lines for supabase-js (SUPABASE_URL, SUPABASE_ANON_KEY,
 * DEMO_ACCESS_TOKEN).
 *
 * Database: DATABASE_URL when set, else an embedded PGlite kept in `.dev-db/`
 * (`--reset` starts it afresh; INGEST_DEV_DIR moves it). Port: PORT (default 54321). Ctrl-C stops it.
 */
import postgres from "postgres";
import { loadConfig } from "../supabase/functions/ingest-data/config.ts";
import { createStore } from "../supabase/functions/ingest-data/create_store.ts";
import { createHandler } from "../supabase/functions/ingest-data/handler.ts";
import { acquireDevLock, DevLockError, LOCK_FILE } from "./dev_lock.ts";
import { startEmbeddedPostgres } from "./embedded_postgres.ts";
import { applyMigrations, applyPlatformFixture } from "./migrate.ts";
import { seedDemo } from "./demo.ts";
import { anonKey, devDir, devJwtSecret, type DevSecret, mintUserToken } from "./jwt.ts";
import { AUTHENTICATOR, type AuthenticatorLogin, prepareLogin } from "./authenticator.ts";
import { startSupabaseStandIns } from "./supabase_stand_ins.ts";
import { createTwinViewHandler, isTwinViewPath } from "./twin_view_route.ts";

const DEV_DIR = devDir();
const PATH = "/functions/v1/ingest-data";
/** The login role of the stand-ins on a DATABASE_URL of your own (PGlite: the fixture's authenticator). */
const STAND_IN_LOGIN = "twinnoverse_stand_in";

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

// One server per dev folder: a second one would open the same PGlite files (dev_lock.ts).
const lock = await acquireDevLock(DEV_DIR).catch((error) => {
  if (!(error instanceof DevLockError)) throw error;
  console.error(error.message);
  Deno.exit(1);
});
if (reset && !external) await emptyDevDir();
const embedded = external ? null : await startEmbeddedPostgres(`${DEV_DIR}pglite`);
const databaseUrl = external ?? embedded!.url;
console.log(external ? "Database: DATABASE_URL" : `Database: embedded PGlite in .dev-db/ (served at ${databaseUrl})`);

const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
await applyPlatformFixture(sql);
const applied = await applyMigrations(sql);
console.log(`Migrations: ${applied.length} applied, database up to date`);
await sql`select private.maintain_history(), private.roll_up_history()`;
await Deno.mkdir(DEV_DIR, { recursive: true });
const keyFile = `${DEV_DIR}demo_key`;
const demo = await seedDemo(sql, { keyFile, newKey: Deno.args.includes("--new-key") });
const keyNote = `${demo.keyReused ? "the same as last time" : "new"}: kept in ${keyFile}; --new-key replaces it`;
// The stand-ins serve clients as a login that can only become the API roles (authenticator.ts).
const login: AuthenticatorLogin = external
  ? await prepareLogin(sql, STAND_IN_LOGIN)
  : { kind: "session_authorization", role: AUTHENTICATOR };
await sql.end();
if (embedded) await Deno.writeTextFile(`${DEV_DIR}database_url`, databaseUrl);

const config = loadConfig({
  ...Deno.env.toObject(),
  DATABASE_URL: databaseUrl,
  SUPABASE_DB_URL: "",
  INGEST_DATABASE_URL: "",
});
const store = createStore(config.store);
// The database's own flush of pending broadcasts, as pg_cron runs it every second on Supabase: it sends what
// writes made outside this server's function (deno task admin, SQL) left pending.
const flushLoop = setInterval(() => store.flushBroadcasts().catch(() => {}), 1_000);
// The history's upkeep and rollups, as pg_cron runs them on Supabase (hourly and every ten minutes; once at start above).
const upkeepLoop = setInterval(() => maintainHistory(databaseUrl).catch(() => {}), 600_000);
const handler = createHandler({
  config,
  store,
  log: (line) =>
    console.log(
      `${line.method} ${line.status} ${line.duration_ms}ms${
        line.datasource_id ? ` datasource=${line.datasource_id}` : ""
      }${line.code ? ` ${line.code}` : ""}${line.dry_run ? " dry_run" : ""} request_id=${line.request_id}`,
    ),
});

// Realtime and REST stand-ins (not Supabase's servers: see docs/realtime.md). PGlite forwards no
// notifications to other connections, so there the Realtime stand-in polls for broadcasts.
const jwt = await devJwtSecret(DEV_DIR, Deno.env.toObject());
const secret = jwt.secret;
const standIns = await startSupabaseStandIns({
  databaseUrl,
  login,
  jwtSecret: secret,
  feed: embedded ? "poll" : "notify",
  poolSize: embedded ? 2 : 4,
});
/** What a dashboard needs to connect to this stack with supabase-js. */
const supabase = {
  supabaseUrl: `http://127.0.0.1:${port}`,
  anonKey: await anonKey(secret),
  demoAccessToken: await mintUserToken(secret, demo.userId, { expiresIn: 30 * 24 * 3600, email: demo.userEmail }),
};

const twinView = createTwinViewHandler({ ...supabase, accessToken: supabase.demoAccessToken });

const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (request) => {
  const path = new URL(request.url).pathname;
  if (path === PATH || path.startsWith(`${PATH}/`)) return handler(request); // the function routes its own paths
  if (isTwinViewPath(path)) return twinView(request);
  return standIns.route(request) ??
    Response.json({ code: "not_found", message: `Not found: the endpoint is ${PATH}` }, { status: 404 });
});

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  console.log("Stopping…");
  clearInterval(flushLoop);
  clearInterval(upkeepLoop);
  await standIns.close();
  await server.shutdown();
  await store.close();
  await embedded?.stop();
  if (embedded) await Deno.remove(`${DEV_DIR}database_url`).catch(() => {});
  await lock.release();
  Deno.exit(0);
}

/** `--reset`: removes everything in the dev folder but the lock this process holds. */
async function emptyDevDir() {
  for await (const entry of Deno.readDir(DEV_DIR)) {
    if (entry.name !== LOCK_FILE) await Deno.remove(`${DEV_DIR}${entry.name}`, { recursive: true });
  }
}
// Listen for Ctrl-C before saying so: a caller may send it as soon as it reads the banner.
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);

const endpoint = `http://127.0.0.1:${port}${PATH}`;
console.log(`
Twinnoverse Ingest is running.
  Endpoint:   ${endpoint}
  Twin view:  http://127.0.0.1:${port}/   (the demo datasource live in 3D: open it in a browser)
  Datasource: ${demo.datasourceName} (${demo.datasourceId})
  API key:    ${demo.apiKey}   (${keyNote})

Try it:
curl -X POST '${endpoint}' \\
  --header 'Authorization: Bearer ${demo.apiKey}' \\
  --header 'Content-Type: application/json' \\
  --data-raw '{"temperature": 42.5, "motor_stats": {"rpm": 1500, "vibration": 0.75}}'

Dashboards (supabase-js; Realtime and REST here are local stand-ins), as .env lines:
SUPABASE_URL=${supabase.supabaseUrl}
SUPABASE_ANON_KEY=${supabase.anonKey}
DEMO_ACCESS_TOKEN=${supabase.demoAccessToken}
DEMO_DATASOURCE_ID=${demo.datasourceId}
${jwt.source === "database" ? `SUPABASE_JWT_SECRET=${secret}` : "# SUPABASE_JWT_SECRET: yours, from the environment"}
(DEMO_ACCESS_TOKEN: user ${demo.userEmail}, a viewer of the demo workspace, for 30 days;
 deno task admin token <user-id> mints others.)
JWT secret: ${secretNote(jwt)}

Ctrl-C stops it.
`);

/** Runs private.maintain_history() and private.roll_up_history() on a connection of their own. */
async function maintainHistory(url: string): Promise<void> {
  const db = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await db`select private.maintain_history(), private.roll_up_history()`;
  } finally {
    await db.end();
  }
}

/** The banner's words for the secret in use. */
function secretNote(jwt: DevSecret): string {
  if (jwt.source === "environment") return "SUPABASE_JWT_SECRET from the environment";
  return `this database's own (${jwt.created ? "new" : "the same as last time"}: kept in ${jwt.file}; ` +
    "--reset makes another); tokens signed with the Supabase CLI's default secret are refused";
}
