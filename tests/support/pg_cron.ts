/**
 * A throwaway PostgreSQL with pg_cron loaded (Debian's postgresql-15-cron, as
 * Supabase runs it), the extension created and the platform fixture applied:
 * pg_cron schedules jobs in one database per server (`cron.database_name`),
 * so each test that schedules jobs gets a server of its own.
 *
 * @module
 */
import postgres from "postgres";
import { applyPlatformFixture } from "../../local/migrate.ts";
import { startPostgres } from "../../local/postgres_server.ts";

/** A pg_cron server and a connection to its `postgres` database; disposing of it stops both. */
export async function startCronPostgres(): Promise<{ sql: postgres.Sql } & AsyncDisposable> {
  const server = await startPostgres({
    settings: {
      shared_preload_libraries: "pg_cron",
      "cron.database_name": "postgres",
      // Jobs run in background workers: no connection (and no password) needed.
      "cron.use_background_workers": "on",
      max_worker_processes: "16",
    },
  });
  const sql = postgres(server.url, { max: 1, onnotice: () => {} });
  async function stop() {
    await sql.end();
    await server.stop();
  }
  try {
    await sql`create extension pg_cron`;
    await applyPlatformFixture(sql);
  } catch (error) {
    await stop();
    throw error;
  }
  return { sql, [Symbol.asyncDispose]: stop };
}
