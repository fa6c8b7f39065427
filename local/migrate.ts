/**
 * Applies the Supabase platform fixture and the project's migrations to a
 * database, recording them in `supabase_migrations.schema_migrations` as the
 * Supabase CLI's `migration up` does, so either can take over from the other.
 *
 * @module
 */
import type { Sql } from "postgres";

const root = new URL("../", import.meta.url);

/** The project's migrations: `supabase/migrations/`. */
export const MIGRATIONS_DIR: URL = new URL("supabase/migrations/", root);

/** The migration files of `dir` (default: the project's), oldest first: `{ version, name, path }`. */
export function listMigrations(dir: URL = MIGRATIONS_DIR): { version: string; name: string; path: URL }[] {
  return [...Deno.readDirSync(dir)]
    .filter((entry) => entry.isFile && /^\d+_.+\.sql$/.test(entry.name))
    .map((entry) => {
      const [, version, name] = entry.name.match(/^(\d+)_(.+)\.sql$/)!;
      return { version: version!, name: name!, path: new URL(entry.name, dir) };
    })
    .sort((a, b) => a.version.localeCompare(b.version));
}

/** Creates what Supabase provides (roles, auth, realtime, default grants) on a plain PostgreSQL. */
export async function applyPlatformFixture(sql: Sql): Promise<void> {
  const fixture = await Deno.readTextFile(new URL("local/supabase_platform.sql", root));
  await sql.unsafe(fixture);
}

/**
 * Applies every migration of `dir` (default: the project's) not applied yet, each in its own transaction; returns
 * the versions applied. With `only`, just the versions it accepts.
 */
export async function applyMigrations(
  sql: Sql,
  options: { dir?: URL; only?: (version: string) => boolean } = {},
): Promise<string[]> {
  await sql.unsafe(`
    create schema if not exists supabase_migrations;
    create table if not exists supabase_migrations.schema_migrations (
      version text primary key, statements text[], name text
    );
  `);
  const applied = new Set(
    (await sql<{ version: string }[]>`select version from supabase_migrations.schema_migrations`).map((r) => r.version),
  );
  const migrations = listMigrations(options.dir);
  const done: string[] = [];
  for (const migration of migrations) {
    if (applied.has(migration.version)) continue;
    if (options.only && !options.only(migration.version)) continue;
    const text = await Deno.readTextFile(migration.path);
    try {
      await sql.begin(async (tx) => {
        await tx.unsafe(text);
        await tx`insert into supabase_migrations.schema_migrations (version, statements, name)
                 values (${migration.version}, ${[text]}, ${migration.name})`;
      });
    } catch (error) {
      // A database migrated by the chain the baseline replaced holds versions this folder no longer has.
      const known = new Set(migrations.map((m) => m.version));
      const foreign = [...applied].filter((version) => !known.has(version));
      const hint = foreign.length === 0 ? "" : ` (the database holds ${foreign.length} migrations that are not in ` +
        `this folder, e.g. ${foreign.sort()[0]}: it was built by another chain; start it afresh, e.g. ` +
        "deno task dev --reset)";
      throw new Error(
        `Cannot apply migration ${migration.version}_${migration.name}.sql: ${(error as Error).message}${hint}`,
      );
    }
    done.push(migration.version);
  }
  return done;
}
