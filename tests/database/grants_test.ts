/**
 * Every privilege the API roles hold in the project's schemas, against an
 * explicit allow-list. Supabase's default privileges grant anon and
 * authenticated everything on each new table, sequence and function in
 * public; the migrations revoke what these roles do not need, and this test
 * fails on anything new.
 */
import assert from "node:assert/strict";
import { createTestDatabase } from "../support/database.ts";
import { asRole, sqlState } from "../support/seed.ts";

/**
 * What `anon` and `authenticated` may do in the schemas `public` and
 * `private`, one line per privilege: `<role> <kind> <object> <privilege>`.
 * A feature that adds a table, column or function the API roles must use
 * adds its lines here (and grants exactly that in its migration); anything
 * else they can reach fails this test. Row level security still decides
 * which rows each privilege reaches (tests/database/rls_test.ts).
 */
export const ALLOWED_GRANTS: readonly string[] = [
  "anon schema public usage",
  "authenticated schema private usage",
  "authenticated schema public usage",
  // Dashboards: members read their workspaces' rows (RLS), owners and editors manage them.
  "authenticated table public.workspaces select",
  "authenticated column public.workspaces.id insert",
  "authenticated column public.workspaces.name insert",
  "authenticated column public.workspaces.name update",
  "authenticated table public.workspaces delete",
  "authenticated table public.workspace_members select",
  "authenticated table public.workspace_members insert",
  "authenticated column public.workspace_members.role update",
  "authenticated table public.workspace_members delete",
  "authenticated table public.datasources select",
  "authenticated column public.datasources.id insert",
  "authenticated column public.datasources.workspace_id insert",
  "authenticated column public.datasources.name insert",
  "authenticated column public.datasources.enabled insert",
  "authenticated column public.datasources.keep_history insert",
  "authenticated column public.datasources.broadcasts_per_second insert",
  "authenticated column public.datasources.history_days insert",
  "authenticated column public.datasources.name update",
  "authenticated column public.datasources.enabled update",
  "authenticated column public.datasources.keep_history update",
  "authenticated column public.datasources.broadcasts_per_second update",
  "authenticated column public.datasources.history_days update",
  "authenticated table public.datasources delete",
  "authenticated table public.widgets select",
  "authenticated column public.widgets.id insert",
  "authenticated column public.widgets.datasource_id insert",
  "authenticated column public.widgets.name insert",
  "authenticated column public.widgets.widget_type insert",
  "authenticated column public.widgets.data_key insert",
  "authenticated column public.widgets.settings insert",
  "authenticated column public.widgets.name update",
  "authenticated column public.widgets.widget_type update",
  "authenticated column public.widgets.data_key update",
  "authenticated column public.widgets.settings update",
  "authenticated table public.widgets delete",
  // Keys: every column but key_hash is readable; only the rate limits are writable.
  "authenticated column public.datasource_api_keys.id select",
  "authenticated column public.datasource_api_keys.datasource_id select",
  "authenticated column public.datasource_api_keys.name select",
  "authenticated column public.datasource_api_keys.prefix select",
  "authenticated column public.datasource_api_keys.scopes select",
  "authenticated column public.datasource_api_keys.created_at select",
  "authenticated column public.datasource_api_keys.expires_at select",
  "authenticated column public.datasource_api_keys.revoked_at select",
  "authenticated column public.datasource_api_keys.last_used_at select",
  "authenticated column public.datasource_api_keys.rate_limit_per_second select",
  "authenticated column public.datasource_api_keys.rate_limit_burst select",
  "authenticated column public.datasource_api_keys.rate_limit_per_second update",
  "authenticated column public.datasource_api_keys.rate_limit_burst update",
  "authenticated function public.create_datasource_api_key(p_datasource_id uuid, p_name text, p_scopes text[], p_expires_at timestamp with time zone) execute",
  "authenticated function public.revoke_datasource_api_key(p_key_id uuid) execute",
  // Values: read only; only ingest_write and ingest_write_batch write them.
  "authenticated table public.datasource_values select",
  "authenticated table public.datasource_readings select",
  "authenticated table private.history_hours select",
  "authenticated table private.history_rollup select",
  // The twin view: members' datasources with their widgets (security invoker: RLS decides).
  "authenticated function public.twin_datasources() execute",
  // The dashboards' first read of the latest values (security invoker: RLS decides).
  "authenticated function public.datasource_latest_values(p_datasource_id uuid) execute",
  "authenticated function public.datasource_history(p_datasource_id uuid, p_keys text[], p_from timestamp with time zone, p_to timestamp with time zone, p_interval interval, p_agg text, p_limit integer, p_cursor text) execute",
  // Limits: owners and editors read a workspace's (RLS), only owners write them; members read usage and
  // throttles; workspace_usage_now summarises them (security invoker: RLS decides).
  "authenticated table public.workspace_limits select",
  "authenticated table public.workspace_limits insert",
  "authenticated table public.workspace_limits update",
  "authenticated table public.workspace_limits delete",
  "authenticated table public.workspace_usage select",
  "authenticated table public.ingest_throttles select",
  "authenticated function public.workspace_usage_now(p_workspace_id uuid) execute",
  // What row level security policies and check constraints run as the calling user.
  "authenticated function private.has_workspace_role(p_workspace_id uuid, p_roles text[]) execute",
  "authenticated function private.has_datasource_role(p_datasource_id uuid, p_roles text[]) execute",
  // datasource_history's helpers (it runs as the caller) and the history's row level security.
  "authenticated function private.readable_datasources() execute",
  "authenticated function private.check_history_arguments(p_keys text[], p_from timestamp with time zone, p_to timestamp with time zone, p_interval interval, p_agg text, p_limit integer, p_cursor text) execute",
  "authenticated function private.can_receive_topic(p_topic text) execute",
  "authenticated function private.is_valid_key_name(name text) execute",
  "authenticated function private.has_two_sub_keys(settings jsonb, first text, second text) execute",
];

/** Every privilege anon and authenticated hold on schemas, tables, columns, sequences and functions. */
const ACTUAL_GRANTS = `
with roles (role) as (values ('anon'), ('authenticated')),
schemas as (select oid, nspname from pg_namespace where nspname in ('public', 'private')),
relations as (
  select c.oid, c.relkind, format('%I.%I', s.nspname, c.relname) as name
  from pg_class c join schemas s on s.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
)
select format('%s schema %s %s', r.role, s.nspname, p.privilege)
from roles r, schemas s, unnest(array['usage', 'create']) p (privilege)
where has_schema_privilege(r.role, s.oid, p.privilege)
union all
select format('%s table %s %s', r.role, t.name, p.privilege)
from roles r, relations t,
  unnest(array['select', 'insert', 'update', 'delete', 'truncate', 'references', 'trigger']) p (privilege)
where t.relkind <> 'S' and has_table_privilege(r.role, t.oid, p.privilege)
union all
-- Column privileges beyond what the table-level privilege already gives.
select format('%s column %s.%I %s', r.role, t.name, a.attname, p.privilege)
from roles r, relations t
join pg_attribute a on a.attrelid = t.oid and a.attnum > 0 and not a.attisdropped,
  unnest(array['select', 'insert', 'update', 'references']) p (privilege)
where t.relkind <> 'S' and has_column_privilege(r.role, t.oid, a.attnum, p.privilege)
  and not has_table_privilege(r.role, t.oid, p.privilege)
union all
select format('%s sequence %s %s', r.role, t.name, p.privilege)
from roles r, relations t, unnest(array['usage', 'select', 'update']) p (privilege)
where t.relkind = 'S' and has_sequence_privilege(r.role, t.oid, p.privilege)
union all
select format('%s function %I.%I(%s) execute', r.role, s.nspname, f.proname, pg_get_function_identity_arguments(f.oid))
from roles r, pg_proc f join schemas s on s.oid = f.pronamespace
where has_function_privilege(r.role, f.oid, 'execute')
order by 1
`;

Deno.test("anon and authenticated hold exactly the allowed privileges on public and private objects", async () => {
  await using db = await createTestDatabase();
  const actual = (await db.sql.unsafe(ACTUAL_GRANTS)).map((row) => row.format as string);
  const unexpected = actual.filter((grant) => !ALLOWED_GRANTS.includes(grant));
  const missing = ALLOWED_GRANTS.filter((grant) => !actual.includes(grant));
  assert.deepEqual(
    { unexpected, missing },
    { unexpected: [], missing: [] },
    "revoke what is unexpected in a migration, or add it to ALLOWED_GRANTS if a role really needs it",
  );
});

Deno.test("neither API role can move the history's id sequence (setval)", async () => {
  await using db = await createTestDatabase();
  for (const role of ["anon", "authenticated"] as const) {
    const state = await sqlState(
      asRole(db.sql, { role }, (tx) => tx`select setval('public.datasource_readings_id_seq', 1)`),
    );
    assert.equal(state, "42501", `${role} calling setval`);
  }
});
