/**
 * The Supabase CLI applies the migrations to a plain PostgreSQL that holds
 * the platform fixture, and its database advisors find nothing to report.
 * Runs the real CLI from npm (`npx supabase@3.1.0`).
 */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { listMigrations } from "../../local/migrate.ts";

const SUPABASE_CLI = ["npx", "--yes", "supabase@3.1.0"];

async function supabase(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...rest] = [...SUPABASE_CLI, ...args];
  const out = await new Deno.Command(cmd!, {
    args: rest,
    cwd: new URL("../../", import.meta.url),
    env: { SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("supabase db push applies every migration in order, as README's deploy steps do", async () => {
  await using db = await createTestDatabase({ migrations: false });
  const push = await supabase("db", "push", `--db-url=${db.url}`, "--yes");
  assert.equal(push.code, 0, push.stderr + push.stdout);
  const names = listMigrations().map((m) => `${m.version}_${m.name}.sql`);
  const output = push.stdout + push.stderr;
  const positions = names.map((name) => output.indexOf(`Applying migration ${name}`));
  assert.ok(positions.every((p, i) => p >= 0 && (i === 0 || p > positions[i - 1]!)), output);
  const applied = await db.sql`select version from supabase_migrations.schema_migrations order by version`;
  assert.deepEqual(applied.map((r) => r.version), listMigrations().map((m) => m.version));
  // Two forms: with the limits the function passes (p_limits), and without (trusted callers, tests).
  const forms = await db.sql`select pg_get_function_identity_arguments(oid) as args from pg_proc
    where proname = 'ingest_write_batch' order by 1`;
  assert.deepEqual(forms.map((r) => r.args), ["p_requests jsonb", "p_requests jsonb, p_limits jsonb"]);
});

Deno.test("supabase migration up applies every migration; db advisors report nothing", async () => {
  await using db = await createTestDatabase({ migrations: false });
  const up = await supabase("migration", "up", `--remote=${db.url}`, "--yes");
  assert.equal(up.code, 0, up.stderr + up.stdout);
  const applied = await db.sql`select version from supabase_migrations.schema_migrations order by version`;
  assert.deepEqual(applied.map((r) => r.version), listMigrations().map((m) => m.version));

  // The CLI's default level (warnings and errors): no finding at all.
  const advisors = await supabase("db", "advisors", `--remote=${db.url}`, "--fail-on", "warn");
  assert.equal(advisors.code, 0, advisors.stderr + advisors.stdout);
  assert.match(advisors.stdout + advisors.stderr, /No issues found/);

  // At info level, only "unused index" on this empty database (the indexes on
  // foreign keys that the unindexed_foreign_keys advisor asks for), and "RLS
  // enabled, no policy" on private.idempotency_keys and private.key_buckets
  // alone: no role but the write functions' owner may touch them, on purpose.
  const info = await supabase("db", "advisors", `--remote=${db.url}`, "--level", "info", "--output-format", "json");
  const { results } = JSON.parse(info.stdout) as {
    results: { name: string; metadata?: { schema?: string; name?: string } }[];
  };
  assert.deepEqual([...new Set(results.map((f) => f.name))].sort(), ["rls_enabled_no_policy", "unused_index"]);
  const noPolicy = results.filter((f) => f.name === "rls_enabled_no_policy");
  // The history's partitions too: reached only through datasource_readings, whose policy applies.
  const partitions = /^private\.datasource_readings_(default|y\d{4}m\d{2}d\d{2})$/;
  const names = noPolicy.map((f) => `${f.metadata?.schema}.${f.metadata?.name}`);
  assert.ok(names.some((n) => partitions.test(n)), "the history's partitions have row level security");
  assert.deepEqual(names.filter((n) => !partitions.test(n)), [
    "private.idempotency_keys",
    "private.key_buckets",
    "private.realtime_activity",
  ]);
});
