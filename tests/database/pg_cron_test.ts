/**
 * The database's own jobs under pg_cron (Debian's postgresql-15-cron, as
 * Supabase runs pg_cron): the migrations schedule the history upkeep and the
 * broadcast flush where pg_cron is installed, and pg_cron runs them.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyMigrations } from "../../local/migrate.ts";
import { startCronPostgres } from "../support/pg_cron.ts";

Deno.test("with pg_cron installed, the migrations schedule the history upkeep, its rollups and the broadcast flush, and they run", async () => {
  await using server = await startCronPostgres();
  const sql = server.sql;
  await applyMigrations(sql);
  const jobs = await sql`select jobname, schedule, command from cron.job order by jobname`;
  assert.deepEqual(jobs.map((j) => [j.jobname, j.command]), [
    ["ingest-flush-broadcasts", "select private.flush_broadcasts()"],
    ["ingest-maintain-history", "select private.maintain_history()"],
    ["ingest-roll-up-history", "select private.roll_up_history()"],
  ]);
  // pg_cron before 1.5 has no seconds: the flush falls back to every minute there.
  assert.ok(["1 seconds", "* * * * *"].includes(jobs[0]!.schedule), jobs[0]!.schedule);

  // Run the upkeep every minute, and wait for pg_cron to run it (at the next minute) to its end: a run is listed
  // while it is still "starting" or "running".
  await sql`select cron.alter_job(jobid, schedule := '* * * * *') from cron.job where jobname = 'ingest-maintain-history'`;
  const deadline = Date.now() + 90_000;
  let runs: postgres.Row[] = [];
  while (Date.now() < deadline) {
    runs = await sql`select d.status, d.return_message from cron.job_run_details d
        join cron.job j using (jobid) where j.jobname = 'ingest-maintain-history' order by d.runid`;
    if (runs.some((run) => run.status === "succeeded" || run.status === "failed")) break;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  assert.equal(runs[0]?.status, "succeeded", JSON.stringify(runs));
});
