/**
 * The baseline migrations (supabase/migrations) build the schema the chain
 * they replaced built (tests/fixtures/migrations_before_baseline, kept only
 * for this test). One database gets the platform fixture and the old chain,
 * another the fixture and the baseline; every migration of
 * supabase/migrations newer than the baseline is then applied to both, so
 * that the comparison stays meaningful as migrations are added. Both are
 * compared through normalised catalog queries (tests/support/catalog.ts):
 * any difference fails with the first differences listed, except the few
 * made on purpose, each listed below with its reason.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyMigrations, listMigrations } from "../../local/migrate.ts";
import { findPostgresBinDir } from "../../local/postgres_server.ts";
import { createTestDatabase } from "../support/database.ts";
import { type Catalog, cronJobs, describeDifferences, diffCatalogs, readCatalog } from "../support/catalog.ts";
import { startCronPostgres } from "../support/pg_cron.ts";

const OLD_CHAIN = new URL("../fixtures/migrations_before_baseline/", import.meta.url);
/** The first and last versions of the baseline. */
const BASELINE_FIRST = "20261206000100";
const BASELINE_LAST = "20261206001000";

/** Differences made on purpose: `old` and `new` are the entry's value in each database (undefined: absent). */
const EXPECTED = [
  {
    section: "types",
    key: "private.ingest_request",
    reason: "a row type no function used any more (ingest_write_batch reads its requests as private.batch_request)",
    new: undefined,
  },
  ...[
    "ingest_write(uuid,uuid,jsonb,timestamp with time zone)",
    "ingest_write_batch(jsonb)",
    "ingest_write_readings(jsonb)",
  ]
    .map((signature) => ({
      section: "comments",
      key: `function public.${signature}`,
      reason: "the comment pointed to a migration file that is gone; it points to docs/security.md",
      oldIncludes: "see 20261126001500",
      newIncludes: "see docs/security.md",
    })),
  // History numbers are numeric, not double precision: two readings of 1.7976931348623157e308 in one bucket made a
  // sum past double precision, which failed the read and the rollup run (and held up every DataKey's rollups).
  ...["sum", "min", "max"].map((column) => ({
    section: "columns",
    key: `private.history_hours.${column}`,
    reason: "rollups hold numeric (exact, no overflow) instead of double precision",
    oldIncludes: '"type":"double precision"',
    newIncludes: '"type":"numeric"',
  })),
  {
    section: "functions",
    key: "private.roll_up_history(timestamp with time zone)",
    reason: "sums the readings as numeric",
    oldIncludes: "x.value::float8 as n",
    newIncludes: "x.value::numeric as n",
  },
  {
    section: "functions",
    key:
      "public.datasource_history(uuid,text[],timestamp with time zone,timestamp with time zone,interval,text,integer,text)",
    reason: "aggregates the readings as numeric; avg is converted to double precision, sum, min and max stay exact",
    oldIncludes: "then v.value::float8 end as number",
    newIncludes: "then v.value::numeric end as number",
  },
  {
    section: "functions",
    key: "private.broadcast_values(uuid,jsonb,jsonb,text,text)",
    reason: "a held commit whose DataKeys are pending already leaves the datasource row as it is (docs/performance.md)",
    oldIncludes: "into v_budget, v_sent_at, v_pending from",
    newIncludes: "if v_budget > 0 and now() < v_due_at and not exists",
  },
  {
    section: "functions",
    key: "private.ingest_take_limits(jsonb,boolean,jsonb,text)",
    reason: "buckets compare epoch seconds within 1e-6 s, not 1e-9 (a full bucket refused its request by rounding)",
    oldIncludes: "+ 1e-9",
    newIncludes: "+ 1e-6",
  },
  {
    section: "functions",
    key: "public.ingest_write(uuid,uuid,jsonb,timestamp with time zone,jsonb)",
    reason: "a request alone takes its key's limits with ingest_take_key_limit, and its workspace's share with " +
      "ingest_take_workspace_shares when it fits (docs/performance.md)",
    oldIncludes: "private.ingest_take_limits(v_ask, false, p_limits, 'keys')",
    newIncludes: "private.ingest_take_key_limit(p_key_id, p_limits)",
  },
  {
    section: "functions",
    key: "private.ingest_take_key_limit(uuid,jsonb)",
    reason: "new: the keys stage of a call of one payload, in one query and one update",
    oldIncludes: undefined,
    newIncludes: "ingest_take_key_limit",
  },
  // The key limits of a batch of single payloads are taken in the write's own pass (docs/performance.md).
  {
    section: "types",
    key: "private.batch_request",
    reason:
      "carries each request's key limits, its workspace and that workspace's limits, and the limit that refused it",
    oldIncludes: '"replay jsonb"]',
    newIncludes:
      '"replay jsonb","key_limits double precision[]","workspace_id uuid","workspace_limits double precision[]","refusal jsonb"]',
  },
  {
    section: "functions",
    key: "public.ingest_write_batch(jsonb)",
    reason: "its work moved to private.ingest_store_batch, which takes key limits too when given them",
    oldIncludes: "declare v_requests private.batch_request[]",
    newIncludes: "return private.ingest_store_batch(p_requests, null, false)",
  },
  {
    section: "functions",
    key: "private.ingest_store_batch(jsonb,jsonb,boolean)",
    reason: "new: ingest_write_batch's work, with the key limits taken from the requests as it reads them",
    oldIncludes: undefined,
    newIncludes: "private.ingest_take_batch_key_limits(v_requests, p_limits)",
  },
  {
    section: "functions",
    key: "private.ingest_take_batch_key_limits(private.batch_request[],jsonb)",
    reason: "new: the keys stage of ingest_store_batch, one lock and one update when every share fits",
    oldIncludes: undefined,
    newIncludes: "ingest_take_limits",
  },
  {
    section: "functions",
    key: "private.ingest_write_within_limits(jsonb,boolean,jsonb)",
    reason: "single payloads go to ingest_store_batch with the limits",
    oldIncludes: "v_keys jsonb := private.ingest_take_limits(p_requests, p_readings, p_limits, 'keys')",
    newIncludes: "private.ingest_store_batch(p_requests, p_limits, false)",
  },
  {
    section: "functions",
    key: "private.ingest_take_workspace_shares(jsonb)",
    reason: "new: the workspaces stage from the shares ingest_store_batch lists, one lock and one update",
    oldIncludes: undefined,
    newIncludes: "jsonb_to_recordset(p_workspaces)",
  },
  {
    section: "functions",
    key: "private.ingest_store_batch_within_workspace_limits(jsonb,jsonb)",
    reason: "new: single payloads within their workspaces' limits, the key limits taken by the write",
    oldIncludes: undefined,
    newIncludes: "private.ingest_take_workspace_shares",
  },
  ...["use_realtime_settings(jsonb)", "broadcast_interval(smallint)"].map((signature) => ({
    section: "functions",
    key: `private.${signature}`,
    reason: "plpgsql instead of sql: a sql function with its own search_path is planned again at every call",
    oldIncludes: "LANGUAGE sql",
    newIncludes: "LANGUAGE plpgsql",
  })),
];

/** Applies the old chain (`old`) or the baseline, then the migrations newer than the baseline. */
async function migrate(sql: postgres.Sql, chain: "old" | "baseline"): Promise<void> {
  if (chain === "old") await applyMigrations(sql, { dir: OLD_CHAIN });
  await applyMigrations(sql, { only: (version) => chain === "baseline" || version > BASELINE_LAST });
}

/** The differences left once the expected ones are taken out; logs the expected ones it found. */
function unexpected(old: Catalog, baseline: Catalog) {
  return diffCatalogs(old, baseline).filter((d) => {
    const expected = EXPECTED.find((e) => e.section === d.section && e.key === d.key);
    if (!expected) return true;
    // An entry whose oldIncludes is undefined is an object the baseline adds.
    const fits = "oldIncludes" in expected
      ? (expected.oldIncludes === undefined ? d.old === undefined : d.old?.includes(expected.oldIncludes)) &&
        d.new?.includes(expected.newIncludes ?? "")
      : d.new === expected.new;
    if (fits) console.log(`expected difference, ${d.section} ${d.key}: ${expected.reason}`);
    return !fits;
  });
}

Deno.test("the baseline is the old migration chain's final form: same catalog, rows and grants", async () => {
  const baselineVersions = listMigrations().map((m) => m.version).filter((v) => v <= BASELINE_LAST);
  assert.equal(baselineVersions[0], BASELINE_FIRST, "the baseline starts where this test says");
  assert.ok(baselineVersions.includes(BASELINE_LAST), "the baseline ends where this test says");
  // The history's day partitions are made for the day the migrations run: build both within one UTC day.
  for (let attempt = 1;; attempt++) {
    const day = new Date().toISOString().slice(0, 10);
    await using old = await createTestDatabase({ migrations: false });
    await using baseline = await createTestDatabase({ migrations: false });
    await migrate(old.sql, "old");
    await migrate(baseline.sql, "baseline");
    if (new Date().toISOString().slice(0, 10) !== day && attempt < 3) continue;
    const differences = unexpected(await readCatalog(old.sql), await readCatalog(baseline.sql));
    assert.equal(differences.length, 0, describeDifferences(differences));
    return;
  }
});

/** Where the cron part cannot run, why (logged, and the test is ignored: visible in the summary). */
const noCron = await cronUnavailable();
if (noCron) console.warn(`baseline_test: the pg_cron comparison is ignored: ${noCron}`);

Deno.test({
  name: "with pg_cron, the baseline schedules the old chain's jobs and builds the same catalog",
  ignore: noCron !== null,
  async fn() {
    // One server each: pg_cron schedules jobs from one database per server only (cron.database_name).
    const build = async (chain: "old" | "baseline") => {
      await using server = await startCronPostgres();
      await migrate(server.sql, chain);
      // No rows: the jobs may have run already (they change the singleton rows' times).
      return { jobs: await cronJobs(server.sql), catalog: await readCatalog(server.sql, { rows: false }) };
    };
    const [old, baseline] = [await build("old"), await build("baseline")];
    assert.ok(old.jobs.length > 0, "the old chain scheduled jobs");
    assert.deepEqual(baseline.jobs, old.jobs);
    const differences = unexpected(old.catalog, baseline.catalog);
    assert.equal(differences.length, 0, describeDifferences(differences));
  },
});

/** Null when this machine's PostgreSQL has pg_cron, else why not. */
async function cronUnavailable(): Promise<string | null> {
  try {
    const binDir = await findPostgresBinDir();
    const out = await new Deno.Command(`${binDir}/pg_config`, { args: ["--sharedir"], stdout: "piped" }).output();
    const control = `${new TextDecoder().decode(out.stdout).trim()}/extension/pg_cron.control`;
    await Deno.stat(control);
    return null;
  } catch (error) {
    return `pg_cron is not installed for this PostgreSQL (${(error as Error).message})`;
  }
}
