/**
 * Test isolation: every test gets a database of its own, cloned from the
 * migrated template that `deno task test` builds, and dropped afterwards.
 *
 * @module
 */
import postgres, { type Sql } from "postgres";

/** A fresh, fully migrated database; `await using` drops it at the end of the test. */
export interface TestDatabase extends AsyncDisposable {
  /**
   * Superuser connection string of this database (the function's own role on Supabase is `postgres` too);
   * through PgBouncer in transaction mode in the suite's pooler phase (INGEST_TEST_POOLER_URL, tests/run.ts).
   */
  url: string;
  name: string;
  /** A superuser connection to it. */
  sql: Sql;
}

/**
 * Clones the migrated template into a new database for one test. With
 * `{ migrations: false }` the database holds only the Supabase platform fixture.
 * The database's TimeZone is `timeZone`, else INGEST_TEST_TIMEZONE (the
 * suite's second phase, see tests/run.ts), else the server's (UTC): a clone
 * does not inherit its template's settings, so each one gets it here.
 */
export async function createTestDatabase(
  options: { migrations?: boolean; timeZone?: string } = {},
): Promise<TestDatabase> {
  const serverUrl = Deno.env.get("INGEST_TEST_SERVER_URL");
  const template = Deno.env.get("INGEST_TEST_TEMPLATE");
  if (!serverUrl || !template) {
    throw new Error("No test database: run the suite with `deno task test`, which starts PostgreSQL and migrates it.");
  }
  const name = `test_${crypto.randomUUID().replaceAll("-", "")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    const source = options.migrations === false ? `${template}_platform` : template;
    await admin.unsafe(`create database ${name} template ${source}`);
    const timeZone = options.timeZone ?? Deno.env.get("INGEST_TEST_TIMEZONE");
    if (timeZone) await admin.unsafe(`alter database ${name} set timezone = ${quoteLiteral(timeZone)}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(serverUrl, name);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  const poolerUrl = Deno.env.get("INGEST_TEST_POOLER_URL");
  return {
    url: poolerUrl ? withDatabase(poolerUrl, name) : url,
    name,
    sql,
    async [Symbol.asyncDispose]() {
      await sql.end();
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** `url` with its database name replaced. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
