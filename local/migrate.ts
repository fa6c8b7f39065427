/**
 * Applies the Supabase platform fixture and the project's migrations to a
 * database, recording them in `supabase_migrations.schema_migrations` as the
 * Supabase CLI's `migration up` does, so either can take over from the other.
 *
 * @module
 */
import type { Sql } from "postgres";

const root = new URL("../", import.meta.url);

/** The migration files, oldest first: `{ version, name, path }`. */
export function listMigrations(): { version: string; name: string; path: URL }[] {
  const dir = new URL("supabase/migrations/", root);
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

/** Applies every migration not applied yet, each in its own transaction; returns the versions applied. */
export async function applyMigrations(sql: Sql): Promise<string[]> {
  await sql.unsafe(`
    create schema if not exists supabase_migrations;
    create table if not exists supabase_migrations.schema_migrations (
      version text primary key, statements text[], name text
    );
  `);
  const applied = new Set(
    (await sql<{ version: string }[]>`select version from supabase_migrations.schema_migrations`).map((r) => r.version),
  );
  const done: string[] = [];
  for (const migration of listMigrations()) {
    if (applied.has(migration.version)) continue;
    const text = await Deno.readTextFile(migration.path);
    try {
      await sql.begin(async (tx) => {
        await tx.unsafe(text);
        await tx`insert into supabase_migrations.schema_migrations (version, statements, name)
                 values (${migration.version}, ${[text]}, ${migration.name})`;
      });
    } catch (error) {
      throw new Error(`Cannot apply migration ${migration.version}_${migration.name}.sql: ${(error as Error).message}`);
    }
    done.push(migration.version);
  }
  return done;
}
