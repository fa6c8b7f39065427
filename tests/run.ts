/**
 * `deno task test`: runs the whole suite against a real PostgreSQL.
 *
 * Starts a throwaway server (or uses DATABASE_URL), builds a template
 * database holding the Supabase platform fixture and every migration, runs
 * `deno test` (each test clones the template into a database of its own),
 * stops the server whatever happened, and ends with `N passed, N failed`.
 * Extra arguments go to `deno test`, e.g. `deno task test tests/widgets_test.ts`.
 *
 * The whole suite runs in two phases: every test with the databases in UTC,
 * then the tests that read or write times again with each database's
 * TimeZone set to Europe/Berlin (a common Supabase setting, with local mean
 * time offsets such as +00:53:28 before 1893), then the function's store and
 * gateway tests again through PgBouncer in transaction mode (the stand-in for
 * Supabase's pooler, local/pooler.ts); the last line sums the phases. With
 * arguments, one phase: set INGEST_TEST_TIMEZONE to run it in another zone,
 * INGEST_TEST_POOLER=1 to run it through the pooler.
 */
import postgres from "postgres";
import { startPostgres } from "../local/postgres_server.ts";
import { applyMigrations, applyPlatformFixture } from "../local/migrate.ts";
import { startPooler } from "../local/pooler.ts";

const TEMPLATE = "ingest_template";
/** The second phase's zone and files: every test file that reads or writes observation or receipt times. */
const TIME_ZONE = "Europe/Berlin";
const TIME_FILES = [
  "tests/database/broadcast_payload_test.ts",
  "tests/database/idempotency_keys_test.ts",
  "tests/database/ingest_write_test.ts",
  "tests/function/after_commit_test.ts",
  "tests/function/containment_test.ts",
  "tests/function/gateway_property_test.ts",
  "tests/function/gateway_test.ts",
  "tests/function/ingest_test.ts",
  "tests/function/openapi_test.ts",
  "tests/function/readings_test.ts",
  "tests/function/supabase_store_test.ts",
  "tests/function/time_zone_test.ts",
];

/** The pooler phase's files: the function's writes and reads through a transaction pooler, several processes too. */
const POOLER_FILES = [
  "tests/function/containment_test.ts",
  "tests/function/gateway_property_test.ts",
  "tests/function/gateway_test.ts",
  "tests/function/global_limits_test.ts",
  "tests/function/ingest_test.ts",
];

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
  const one = () =>
    Deno.env.get("INGEST_TEST_POOLER") ? runPoolerPhase(adminUrl, Deno.args) : runDenoTest(adminUrl, Deno.args);
  const phases = Deno.args.length > 0 ? [await one()] : [
    await runDenoTest(adminUrl, ["tests/"]),
    await runDenoTest(adminUrl, TIME_FILES, { timeZone: TIME_ZONE }),
    await runPoolerPhase(adminUrl),
  ];
  const passed = phases.reduce((sum, phase) => sum + phase.passed, 0);
  const failed = phases.reduce((sum, phase) => sum + phase.failed, 0);
  console.log(`${passed} passed, ${failed} failed`);
  code = phases.every((phase) => phase.ok) ? 0 : 1;
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

/** POOLER_FILES with each test database's `url` through PgBouncer in transaction mode (its `sql` stays direct). */
async function runPoolerPhase(
  url: string,
  files: string[] = POOLER_FILES,
): Promise<{ passed: number; failed: number; ok: boolean }> {
  const port = new URL(url).port;
  await using pooler = await startPooler(Number(port));
  console.error(`Pooler phase: ${files.length} files through PgBouncer (transaction mode) on port ${pooler.port}`);
  const result = await runDenoTest(url, files, { poolerUrl: pooler.pooled(url) });
  // Proof that the phase went through the pooler, not around it.
  const transactions = await pooler.transactions();
  console.error(`Pooler phase: PgBouncer passed ${transactions} transactions to PostgreSQL`);
  return transactions > 0 ? result : { ...result, failed: result.failed + 1, ok: false };
}

/**
 * One `deno test` run; with `timeZone`, each test database has that TimeZone; with `poolerUrl`, each test
 * database's `url` goes through that pooler.
 */
async function runDenoTest(
  url: string,
  args: string[],
  options: { timeZone?: string; poolerUrl?: string } = {},
): Promise<{ passed: number; failed: number; ok: boolean }> {
  const { timeZone, poolerUrl } = options;
  if (timeZone) console.error(`Time zone phase: ${args.length} files with each database's TimeZone = ${timeZone}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", ...args],
    env: {
      INGEST_TEST_SERVER_URL: url,
      INGEST_TEST_TEMPLATE: TEMPLATE,
      NO_COLOR: "1",
      ...(timeZone ? { INGEST_TEST_TIMEZONE: timeZone } : {}),
      ...(poolerUrl ? { INGEST_TEST_POOLER_URL: poolerUrl } : {}),
    },
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
  // No summary: deno test did not get to run the tests (a type error, say); count it as one failure.
  if (!summary) return { passed: 0, failed: 1, ok: false };
  return { passed: Number(summary[1]), failed: Number(summary[2]), ok: status.code === 0 };
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
