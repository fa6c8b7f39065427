/**
 * `deno task test`: runs the whole suite against a real PostgreSQL.
 *
 * Starts a throwaway server (or uses DATABASE_URL), builds a template
 * database holding the Supabase platform fixture and every migration, runs
 * `deno test` (each test clones the template into a database of its own),
 * stops the server whatever happened, and ends with `N passed, N failed`.
 * Extra arguments go to `deno test`, e.g. `deno task test tests/widgets_test.ts`.
 */
import postgres from "postgres";
import { startPostgres } from "../local/postgres_server.ts";
import { applyMigrations, applyPlatformFixture } from "../local/migrate.ts";

const TEMPLATE = "ingest_template";

const server = Deno.env.get("DATABASE_URL") ? null : await startPostgres();
const adminUrl = Deno.env.get("DATABASE_URL") ?? server!.url;
let code = 1;
// Ctrl-C: stop the server before leaving, as on any other exit.
Deno.addSignalListener("SIGINT", async () => {
  await server?.stop();
  Deno.exit(130);
});
try {
  console.error(server ? `PostgreSQL started on port ${server.port}` : "Using DATABASE_URL");
  await buildTemplate(adminUrl);
  code = await runDenoTest(adminUrl, Deno.args);
} finally {
  await server?.stop();
}
Deno.exit(code);

/** Builds `ingest_template_platform` (the fixture only) and `ingest_template` (fixture and migrations). */
async function buildTemplate(url: string): Promise<void> {
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    for (const name of [TEMPLATE, `${TEMPLATE}_platform`]) {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.unsafe(`create database ${name}`);
      const db = postgres(withDatabase(url, name), { max: 1, onnotice: () => {} });
      try {
        await applyPlatformFixture(db);
        if (name === TEMPLATE) {
          console.error(`Template database ready: ${(await applyMigrations(db)).length} migrations applied`);
        }
      } finally {
        await db.end();
      }
    }
  } finally {
    await admin.end();
  }
}

async function runDenoTest(url: string, args: string[]): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", ...(args.length > 0 ? args : ["tests/"])],
    env: { INGEST_TEST_SERVER_URL: url, INGEST_TEST_TEMPLATE: TEMPLATE, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let tail = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4000);
  }
  const status = await child.status;
  // deno test ends with e.g. "ok | 42 passed (3 steps) | 0 failed (1s)".
  const summary = tail.match(/(\d+) passed[^|]*\| (\d+) failed/);
  if (summary) console.log(`${summary[1]} passed, ${summary[2]} failed`);
  else console.log(`0 passed, 1 failed`);
  return status.code === 0 && summary ? 0 : 1;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
