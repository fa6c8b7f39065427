-- Datasources: what an external system pushes values into.

-- One stream of readings from a customer's system, shown by the widgets linked to it.
-- config_version changes whenever its widgets change, so the function knows
-- when a cached validator is stale.
create table public.datasources (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  name text not null check (length(trim(name)) between 1 and 200),
  enabled boolean not null default true,
  keep_history boolean not null default true,
  config_version bigint not null default 1,
  last_ingested_at timestamptz,
  created_at timestamptz not null default now()
) with (fillfactor = 70); -- last_ingested_at is updated at the ingest rate: keep those updates HOT
create index datasources_workspace_id_idx on public.datasources (workspace_id);

-- True when the current user has one of `roles` in the datasource's workspace.
create function private.has_datasource_role(p_datasource_id uuid, p_roles text[])
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.datasources d
    join public.workspace_members m on m.workspace_id = d.workspace_id
    where d.id = p_datasource_id
      and m.user_id = (select auth.uid())
      and m.role = any (p_roles)
  );
$$;
revoke all on function private.has_datasource_role(uuid, text[]) from public;
grant execute on function private.has_datasource_role(uuid, text[]) to authenticated;

alter table public.datasources enable row level security;

revoke all on table public.datasources from anon, authenticated, service_role;
grant select, delete on table public.datasources to authenticated;
grant insert (id, workspace_id, name, enabled, keep_history) on table public.datasources to authenticated;
grant update (name, enabled, keep_history) on table public.datasources to authenticated;
grant select, insert, update, delete on table public.datasources to service_role;

-- Members see their workspaces' datasources.
create policy datasources_select_members on public.datasources
for select to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor', 'viewer']));

-- Owners and editors create datasources.
create policy datasources_insert_editors on public.datasources
for insert to authenticated
with check (private.has_workspace_role(workspace_id, array['owner', 'editor']));

-- Owners and editors change datasources (within their workspace).
create policy datasources_update_editors on public.datasources
for update to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor']))
with check (private.has_workspace_role(workspace_id, array['owner', 'editor']));

-- Owners and editors delete datasources.
create policy datasources_delete_editors on public.datasources
for delete to authenticated
using (private.has_workspace_role(workspace_id, array['owner', 'editor']));
